"""Spectral-line source finding in a FITS cube: a smooth-and-clip search written here, the method of SoFiA's S+C
finder (Serra et al. 2012; SoFiA-2, Westmeier et al. 2021, the finder of WALLABY and of the SKA Data Challenge 2)
without its reliability filter.

Why not SoFiA-2 itself: it was looked for and is not installable as a package here (checked for issue 23): PyPI
has no `sofia2` / `sofia-2` distribution (`pip index versions` and `pip download` find none; `sofia` on PyPI is an
unrelated placeholder and `deblend-sofia-detections` only post-processes SoFiA's catalogues), and Debian has no
SoFiA package (`apt-cache search sofia` lists only the Sofia-SIP telephony library). SoFiA-2 is C source built with
its own script from its repository, which the project's machines cannot fetch.

Method (all numbers are FinderParameters' defaults):
1. The cube is read a slab of planes at a time from the memory-mapped file, with a halo of 7 planes each side for
   the widest spectral kernel: as many planes as slab_bytes (256 MiB) holds at 36 bytes a pixel of each plane of the
   slab and 4 of each plane read, at least one (a 4096^2 cube then needs about 1.6 GB); NaN pixels count as 0 for
   smoothing and are never detected.
2. Each slab is smoothed with every pair of a spatial Gaussian (FWHM 0 or 1 x the median restoring beam's BMAJ) and
   a spectral boxcar (1, 3, 7, 15 planes) -- SoFiA's default kernel set, in beams rather than pixels.
3. The noise of each smoothed plane is 1.4826 x its median absolute deviation (robust to the sources in it; planes
   of more than 2^20 pixels are subsampled on a regular grid); voxels beyond threshold_sigma (5) of their plane's
   noise in any smoothed cube are in the mask: the union over the kernels (S+C). Positive and negative excursions
   get separate masks.
4. Mask voxels join into 3-D components (26-connectivity, scipy.ndimage.label), across slab boundaries too; a
   component is kept when its footprint (distinct (y, x) pixels) covers min_footprint_beams (0.5) restoring beams
   and it spans at least min_channels (1) planes: noise peaks are smaller than a beam, a source at least a beam.
5. Each component's mask is dilated, as SoFiA's mask dilation does: by 1 pixel spatially at a time (up to
   dilate_beams (1) x BMAJ), then by 1 plane at each end (up to dilate_planes (8)), while a step adds more than
   dilate_stop (2 %) of the flux; the mask of a source never includes another component's voxels.
6. Measured within the dilated mask of the (unsmoothed) cube, for plane k of restoring-beam area A_k pixels
   (pi BMAJ BMIN / (4 ln 2) / cell^2) and plane width dnu (Hz):
     - the spectrum S_k = sum over the mask's pixels of plane k of I (Jy/beam) / A_k, Jy: a source of flux density
       S in a Jy/beam image is S x the beam (peak 1), whose sum over pixels is S x A_k;
     - the integrated line flux F = sum_k S_k dnu, Jy Hz; its noise sigma_F = dnu sqrt(sum_k sigma_k^2 N_k / A_k)
       for N_k mask pixels of plane k (noise correlated over a beam: exact for masks much larger than a beam);
     - the position: the centroid of the voxels weighted by max(I, 0) / A_k, through the celestial WCS; the centre
       frequency: the same centroid along FREQ through the spectral WCS;
     - W20: the width of S_k at 20 % of its peak, found inward from both ends of the spectrum with linear
       interpolation between planes (as SoFiA's w20);
     - the peak signal-to-noise: the largest I / sigma_k of the component's (undilated) voxels.
   The negative components are measured the same way on -I: they estimate the false detections that noise makes
   (SoFiA's reliability idea, here only counted, not used to filter).

Limits: no reliability filter (a threshold below ~5 sigma lets noise through; the negative count says how much);
sources below ~6 sigma in the best kernel are rejected by the footprint rule; the integrated flux of a faint source
is biased low (its mask misses the wings below the noise); blended sources within a beam and a line width are one
detection; a continuum source left in the cube (no CONTSUB) is detected as a line filling the band; a dirty cube's
"flux" divides by the fitted PSF main lobe, not a restoring beam (its sums are not fluxes); the spatial kernel uses the
median beam of all planes; dilation is bounded by the sub-cube read around each component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from srcnet_sim.imaging.beam import FWHM_PER_SIGMA
from srcnet_sim.progress import logger
from srcnet_sim.qa.cube_io import CubeGeometry, CubeReader, read_geometry

MAD_TO_SIGMA = 1.4826
NOISE_SAMPLE_PIXELS = 2**20  # a plane's noise is the MAD of at most about this many pixels (a regular subsample)
STRUCTURE = ndimage.generate_binary_structure(3, 3)  # 26-connectivity


@dataclass(frozen=True)
class FinderParameters:
    """The finder's settings (module docstring: the method); defaults as stated there."""

    threshold_sigma: float = 5.0
    spatial_kernels_beams: tuple[float, ...] = (0.0, 1.0)
    spectral_kernels_planes: tuple[int, ...] = (1, 3, 7, 15)
    min_footprint_beams: float = 0.5
    min_channels: int = 1
    dilate_beams: float = 1.0
    dilate_planes: int = 8
    dilate_stop: float = 0.02
    slab_bytes: int = 256 * 2**20

    def describe(self) -> str:
        """One line for the report."""
        return (f"smooth-and-clip (SoFiA S+C method, written here): spatial Gaussians {self.spatial_kernels_beams} "
                f"x BMAJ, spectral boxcars {self.spectral_kernels_planes} planes, threshold {self.threshold_sigma} "
                f"sigma (1.4826 MAD per smoothed plane), 26-connected, footprint >= {self.min_footprint_beams} "
                f"beams, >= {self.min_channels} planes, dilated up to {self.dilate_beams} BMAJ and "
                f"{self.dilate_planes} planes while a step adds > {100 * self.dilate_stop:g} % of the flux")


@dataclass(frozen=True)
class LineDetections:
    """Detected line sources: (n,) arrays. Pixel coordinates are 0-based (x, y, plane z) centroids."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray
    z_plane: np.ndarray
    freq_hz: np.ndarray
    line_flux_jy_hz: np.ndarray
    line_flux_error_jy_hz: np.ndarray
    w20_hz: np.ndarray
    peak_snr: np.ndarray
    n_voxels: np.ndarray
    n_planes: np.ndarray

    def __len__(self) -> int:
        return len(self.ra_deg)

    @property
    def snr(self) -> np.ndarray:
        """(n,) integrated-flux signal-to-noise F / sigma_F."""
        return self.line_flux_jy_hz / np.where(self.line_flux_error_jy_hz > 0, self.line_flux_error_jy_hz, np.inf)

    def columns(self) -> dict[str, tuple[np.ndarray, str]]:
        """Catalogue columns: name -> (values, unit)."""
        return {"RA": (self.ra_deg, "deg"), "DEC": (self.dec_deg, "deg"), "X": (self.x_px, "pix"),
                "Y": (self.y_px, "pix"), "Z": (self.z_plane, "pix"), "FREQ": (self.freq_hz, "Hz"),
                "LINE_FLUX": (self.line_flux_jy_hz, "Jy Hz"), "LINE_FLUX_ERR": (self.line_flux_error_jy_hz, "Jy Hz"),
                "SNR": (self.snr, ""), "W20": (self.w20_hz, "Hz"), "PEAK_SNR": (self.peak_snr, ""),
                "N_VOXELS": (self.n_voxels, ""), "N_CHAN": (self.n_planes, "")}


@dataclass(frozen=True)
class FinderResult:
    """The detections (positive), the negative components measured the same way, the per-plane noise (n_planes,)
    Jy/beam of the unsmoothed cube, the peak |I| / sigma projection (ny, nx) over the planes, the geometry and the
    parameters used."""

    detections: LineDetections
    negatives: LineDetections
    noise_jy_per_beam: np.ndarray
    peak_snr_map: np.ndarray
    geometry: CubeGeometry
    parameters: FinderParameters = field(default_factory=FinderParameters)


def robust_plane_sigma(plane: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the finite pixels of a (ny, nx) plane (NaN when none is finite);
    planes of more than NOISE_SAMPLE_PIXELS pixels are subsampled on a regular grid."""
    step = max(1, int(np.sqrt(plane.size / NOISE_SAMPLE_PIXELS)))
    values = plane[::step, ::step]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(MAD_TO_SIGMA * np.median(np.abs(values - np.median(values))))


class _Linker:
    """Mask voxels of slab after slab joined into 3-D components (26-connected across slab boundaries too)."""

    def __init__(self, shape: tuple[int, int, int], min_footprint_px: float) -> None:
        self.shape, self.min_footprint_px = shape, min_footprint_px
        self.voxels: list[np.ndarray] = []  # (4, n) int64: z, y, x, label
        self.pairs: list[np.ndarray] = []  # (2, n) labels that touch across a slab boundary
        self.n_labels = 0
        self._last: np.ndarray | None = None  # (ny, nx) global labels of the previous slab's last plane
        self._last_z = -2

    def add(self, mask: np.ndarray, z0: int) -> None:
        """Add the (n, ny, nx) mask of planes [z0, z0 + n)."""
        labels, n = ndimage.label(mask, structure=STRUCTURE)
        labels = labels.astype(np.int64)
        labels[labels > 0] += self.n_labels
        if self._last is not None and self._last_z == z0 - 1:
            self._link(self._last, labels[0])
        z, y, x = np.nonzero(labels)
        lab = labels[z, y, x]
        if lab.size:
            keep = self._worth_keeping(z, y, x, lab, len(mask))
            z, y, x, lab = z[keep], y[keep], x[keep], lab[keep]
            self.voxels.append(np.stack([z + z0, y, x, lab]))
        self.n_labels += n
        self._last, self._last_z = labels[-1], z0 + len(mask) - 1

    def _worth_keeping(self, z: np.ndarray, y: np.ndarray, x: np.ndarray, lab: np.ndarray, n_planes: int) -> np.ndarray:
        """Voxels of components that touch the slab's first or last plane (they may join others) or are big enough."""
        ids, inverse = np.unique(lab, return_inverse=True)
        edge = np.zeros(len(ids), dtype=bool)
        np.logical_or.at(edge, inverse, (z == 0) | (z == n_planes - 1))
        pixel = np.unique(inverse * (self.shape[1] * self.shape[2]) + y * self.shape[2] + x) // (self.shape[1] * self.shape[2])
        footprint = np.bincount(pixel, minlength=len(ids))
        return (edge | (footprint >= self.min_footprint_px))[inverse]

    def _link(self, below: np.ndarray, above: np.ndarray) -> None:
        ny, nx = below.shape
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                a = below[max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
                b = above[max(0, dy):ny - max(0, -dy), max(0, dx):nx - max(0, -dx)]
                both = (a > 0) & (b > 0)
                if both.any():
                    self.pairs.append(np.stack([a[both], b[both]]))

    def components(self, min_channels: int) -> list[np.ndarray]:
        """The kept components: each a (3, n) array of voxel (z, y, x)."""
        if not self.voxels:
            return []
        voxels = np.concatenate(self.voxels, axis=1)
        n = self.n_labels + 1
        pairs = np.concatenate(self.pairs, axis=1) if self.pairs else np.zeros((2, 0), dtype=np.int64)
        graph = coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(n, n))
        _, root = connected_components(graph, directed=False)
        group = root[voxels[3]]
        order = np.argsort(group, kind="stable")
        voxels, group = voxels[:3, order], group[order]
        starts = np.flatnonzero(np.r_[True, np.diff(group) != 0])
        out = []
        nx = self.shape[2]
        for part in np.split(voxels, starts[1:], axis=1):
            footprint = len(np.unique(part[1] * nx + part[2]))
            if footprint >= self.min_footprint_px and len(np.unique(part[0])) >= min_channels:
                out.append(part)
        return out


def _boxcar(planes: np.ndarray, lo: int, n: int, width: int) -> np.ndarray:
    """(n, ny, nx) mean over `width` planes centred on each core plane lo .. lo + n - 1 of `planes` (which holds
    width // 2 planes beyond the core on each side, or the cube ends: zeros beyond them)."""
    out = np.empty((n, *planes.shape[1:]), dtype=np.float32)
    half = width // 2
    for k in range(n):
        a, b = max(0, lo + k - half), min(len(planes), lo + k + half + 1)
        np.sum(planes[a:b], axis=0, out=out[k])
        out[k] /= width
    return out


def _smoothed_masks(planes: np.ndarray, lo: int, hi: int, params: FinderParameters,
                    sigma_px: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive and negative (n, ny, nx) masks of the core planes [lo, len - hi) of `planes` (halo included), and
    the (n,) noise of the unsmoothed core planes. `planes` is changed: its NaN become 0."""
    n = len(planes) - lo - hi
    core = slice(lo, lo + n)
    blank = ~np.isfinite(planes[core])
    noise = np.array([robust_plane_sigma(p) for p in planes[core]])
    np.nan_to_num(planes, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    pos = np.zeros((n, *planes.shape[1:]), dtype=bool)
    neg = np.zeros_like(pos)
    for width in params.spectral_kernels_planes:
        spectral = planes[core] if width == 1 else _boxcar(planes, lo, n, width)
        for s in sigma_px:
            if s == 0:
                smooth = spectral.copy()
            else:
                smooth = ndimage.gaussian_filter(spectral, (0, s, s), mode="constant")
            smooth[blank] = np.nan
            sigma = noise if (width == 1 and s == 0) else np.array([robust_plane_sigma(p) for p in smooth])
            limit = (params.threshold_sigma * sigma)[:, None, None]
            with np.errstate(invalid="ignore"):
                pos |= smooth > limit
                neg |= smooth < -limit
            del smooth
    return pos, neg, noise


BYTES_PER_CORE_PIXEL = 36  # a core plane's smoothed copies (float32), masks and labels (int32 + int64)
BYTES_PER_READ_PIXEL = 4  # a plane read (float32), core or halo


def _slab_planes(geometry: CubeGeometry, params: FinderParameters, halo: int) -> int:
    """Core planes per slab: those whose working memory, with the 2 x halo planes read around them, fits in
    slab_bytes; at least one (then a slab takes (36 + 4 (1 + 2 halo)) x ny x nx bytes)."""
    ny, nx = geometry.shape[1:]
    per_plane = ny * nx
    n = (params.slab_bytes / per_plane - 2 * halo * BYTES_PER_READ_PIXEL) / (BYTES_PER_CORE_PIXEL + BYTES_PER_READ_PIXEL)
    return max(1, int(n))


def find_lines(cube: Path, params: FinderParameters | None = None) -> FinderResult:
    """Find line sources in the FITS cube at `cube` (module docstring: the method and its limits).

    Raises QAError (one line) when the file is not a Jy/beam cube with restoring beams.
    """
    params = params or FinderParameters()
    geometry = read_geometry(cube)
    n_planes, ny, nx = geometry.shape
    beam_px = geometry.beam_major_px
    sigma_px = [k * beam_px / FWHM_PER_SIGMA for k in params.spatial_kernels_beams]
    halo = max(params.spectral_kernels_planes) // 2
    per_slab = _slab_planes(geometry, params, halo)
    min_footprint = params.min_footprint_beams * float(np.nanmedian(geometry.beam_area_px))
    linkers = (_Linker(geometry.shape, min_footprint), _Linker(geometry.shape, min_footprint))
    noise = np.full(n_planes, np.nan)
    peak_map = np.zeros((ny, nx), dtype=np.float32)
    with CubeReader(geometry) as reader:
        for z0 in range(0, n_planes, per_slab):
            z1 = min(n_planes, z0 + per_slab)
            r0, r1 = max(0, z0 - halo), min(n_planes, z1 + halo)
            planes = reader.planes(r0, r1)
            pos, neg, noise[z0:z1] = _smoothed_masks(planes, z0 - r0, r1 - z1, params, sigma_px)
            for k in range(z0, z1):  # NaN are 0 now
                if noise[k] > 0:
                    np.maximum(peak_map, np.abs(planes[k - r0]) / noise[k], out=peak_map)
            linkers[0].add(pos, z0)
            linkers[1].add(neg, z0)
        found = [_measure_all(reader, geometry, params, linker.components(params.min_channels), noise, sign)
                 for linker, sign in zip(linkers, (1.0, -1.0), strict=True)]
    logger.info("qa: line finder: %d detections, %d negative components, median plane noise %.3g Jy/beam",
                len(found[0]), len(found[1]), float(np.nanmedian(noise)))
    return FinderResult(found[0], found[1], noise, peak_map, geometry, params)


def _measure_all(reader: CubeReader, geometry: CubeGeometry, params: FinderParameters, components: list[np.ndarray],
                 noise: np.ndarray, sign: float) -> LineDetections:
    """Measure every component (measure), the others' voxels kept out of each one's dilated mask."""
    lows = np.array([c.min(axis=1) for c in components]).reshape(-1, 3)
    highs = np.array([c.max(axis=1) for c in components]).reshape(-1, 3)
    reach = np.array([params.dilate_planes, *(2 * [int(np.ceil(params.dilate_beams * geometry.beam_major_px))])])
    rows = []
    for i, voxels in enumerate(components):
        near = np.all((lows <= highs[i] + 2 * reach) & (highs >= lows[i] - 2 * reach), axis=1)
        near[i] = False
        rows.append(measure(reader, geometry, params, voxels, noise, sign, [components[j] for j in np.flatnonzero(near)]))
    names = ("x_px", "y_px", "z_plane", "freq_hz", "line_flux_jy_hz", "line_flux_error_jy_hz", "w20_hz", "peak_snr",
             "n_voxels", "n_planes")
    values = {name: np.array([r[i] for r in rows], dtype=np.int64 if name.startswith("n_") else np.float64)
              for i, name in enumerate(names)}
    if rows:
        ra, dec = geometry.celestial.pixel_to_world_values(values["x_px"], values["y_px"])
    else:
        ra = dec = np.zeros(0)
    return LineDetections(ra_deg=np.atleast_1d(np.asarray(ra, dtype=np.float64)),
                          dec_deg=np.atleast_1d(np.asarray(dec, dtype=np.float64)), **values)


def measure(reader: CubeReader, geometry: CubeGeometry, params: FinderParameters, voxels: np.ndarray,
            noise: np.ndarray, sign: float = 1.0, others: list[np.ndarray] = ()) -> tuple:
    """Dilate one component's mask and measure it (module docstring, steps 5 and 6); sign -1 measures -I.

    voxels: (3, n) z, y, x of the component; noise: (n_planes,) Jy/beam; others: (3, m) voxels of the components
    near it, which its mask may not take. Returns (x, y, z centroids in pixels, freq_hz, flux_jy_hz,
    flux_error_jy_hz, w20_hz, peak_snr, n_voxels, n_planes) of the dilated mask (flux of sign x I).
    """
    n_planes, ny, nx = geometry.shape
    grow = int(np.ceil(params.dilate_beams * geometry.beam_major_px))
    lo = np.maximum(voxels.min(axis=1) - [params.dilate_planes, grow, grow], 0)
    hi = np.minimum(voxels.max(axis=1) + [params.dilate_planes, grow, grow] + 1, [n_planes, ny, nx])
    data = sign * reader.planes(int(lo[0]), int(hi[0]), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2])))
    data = np.where(np.isfinite(data), data, 0.0).astype(np.float64)
    mask = np.zeros(data.shape, dtype=bool)
    mask[tuple(voxels - lo[:, None])] = True
    taken = np.zeros_like(mask)
    for other in others:
        local = other - lo[:, None]
        inside = np.all((local >= 0) & (local < np.array(mask.shape)[:, None]), axis=0)
        taken[tuple(local[:, inside])] = True
    area = geometry.beam_area_px[lo[0]:hi[0]][:, None, None]
    per_beam = data / area
    peak_snr = float(np.max(data[tuple(voxels - lo[:, None])] / noise[voxels[0]]))

    def flux(m: np.ndarray) -> float:
        return float(per_beam[m].sum())

    for structure, steps in ((np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool), grow),
                             (np.ones((3, 1, 1), bool), params.dilate_planes)):
        current = flux(mask)
        for _ in range(steps):
            grown = ndimage.binary_dilation(mask, structure) & ~taken
            added = flux(grown) - current
            if added <= params.dilate_stop * abs(current):
                break
            mask, current = grown, current + added
    spectrum = (per_beam * mask).sum(axis=(1, 2))  # Jy per plane
    width = geometry.channel_width_hz
    pixels = mask.sum(axis=(1, 2))
    sigma = noise[lo[0]:hi[0]]
    error = width * float(np.sqrt(np.nansum(sigma**2 * pixels / area[:, 0, 0])))
    weight = np.where(mask, np.clip(per_beam, 0.0, None), 0.0)
    total = weight.sum()
    z, y, x = np.indices(mask.shape)
    if total > 0:
        cz, cy, cx = ((c * weight).sum() / total for c in (z, y, x))
    else:
        cz, cy, cx = (c[mask].mean() for c in (z, y, x))
    cz, cy, cx = cz + lo[0], cy + lo[1], cx + lo[2]
    freq = float(np.interp(cz, np.arange(n_planes), geometry.freq_hz))
    return (float(cx), float(cy), float(cz), freq, float(spectrum.sum()) * width, error,
            w20_planes(spectrum) * width, peak_snr, int(mask.sum()), int(np.count_nonzero(pixels)))


def w20_planes(spectrum: np.ndarray) -> float:
    """Width (planes) of a (n,) spectrum at 20 % of its peak, found inward from both ends with linear interpolation
    (the crossing at an end that is itself above 20 % is that end's outer edge, half a plane out)."""
    if spectrum.size == 0 or not np.max(spectrum) > 0:
        return 0.0
    level = 0.2 * float(np.max(spectrum))
    above = np.flatnonzero(spectrum >= level)
    first, last = int(above[0]), int(above[-1])

    def crossing(inside: int, outside: int) -> float:
        if outside < 0 or outside >= spectrum.size:
            return inside + 0.5 * (outside - inside)
        a, b = spectrum[inside], spectrum[outside]
        return inside + (outside - inside) * (a - level) / (a - b)

    return crossing(last, last + 1) - crossing(first, first - 1)
