"""PNG quick-look of a FITS image: RA/Dec axes, an asinh stretch, a Jy/beam colour bar, the beam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, ImageNormalize
from astropy.wcs import WCS
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from srcnet_sim.imaging.clean import robust_sigma

DISPLAY_PIXELS = 800  # images larger than this are max-pooled so that point sources stay visible


def _max_pool(image: np.ndarray, factor: int) -> np.ndarray:
    """Block maximum over factor x factor pixels (trailing rows/columns that do not fill a block are dropped)."""
    n = (image.shape[0] // factor) * factor
    return image[:n, :n].reshape(n // factor, factor, n // factor, factor).max(axis=(1, 3))


def write_preview(fits_path: Path, png_path: Path | None = None, title: str | None = None) -> Path:
    """Render `fits_path` to a PNG beside it (or at png_path).

    Drawn on a bare matplotlib Figure (no pyplot): no backend is chosen or changed, so this works headless
    and leaves the caller's matplotlib as it was.
    """
    fits_path = Path(fits_path)
    png_path = Path(png_path) if png_path else fits_path.with_suffix(".png")
    with fits.open(fits_path) as hdul:
        head = hdul[0].header
        image = np.asarray(hdul[0].data[0, 0], dtype=np.float64)
    wcs = WCS(head).celestial
    sigma = robust_sigma(image)
    peak = float(image.max())
    factor = max(1, int(np.ceil(image.shape[0] / DISPLAY_PIXELS)))
    if factor > 1:
        image = _max_pool(image, factor)
        wcs = wcs.slice((np.s_[::factor], np.s_[::factor]))
    # asinh: linear within a few sigma (noise and faint sources), logarithmic up to the brightest source.
    norm = ImageNormalize(vmin=-3 * sigma, vmax=max(peak, 5 * sigma), stretch=AsinhStretch(a=max(3 * sigma / max(peak, 1e-30), 1e-4)))
    fig = Figure(figsize=(8, 7), dpi=110)
    ax = fig.add_subplot(projection=wcs)
    shown = ax.imshow(image, origin="lower", cmap="inferno", norm=norm, interpolation="nearest")
    ax.set_xlabel("RA (J2000)")
    ax.set_ylabel("Dec (J2000)")
    ax.coords.grid(color="white", alpha=0.15, linestyle=":")
    bar = fig.colorbar(shown, ax=ax, pad=0.02, fraction=0.046)
    bar.set_label(head.get("BUNIT", "").replace("JY/BEAM", "Jy/beam"))
    if head.get("BMAJ"):
        cell = abs(head["CDELT2"]) * factor
        major, minor = head["BMAJ"] / cell, head["BMIN"] / cell
        size = max(major, 8.0)
        ax.add_patch(Ellipse((2 * size, 2 * size), width=minor, height=major, angle=head.get("BPA", 0.0),
                             edgecolor="cyan", facecolor="none", linewidth=1.2))
    pooled = f", {factor}x{factor} max-pooled" if factor > 1 else ""
    ax.set_title(f"{title or fits_path.name}   peak {peak:.3g} Jy/beam, rms {sigma:.2g} Jy/beam{pooled}", fontsize=10)
    fig.savefig(png_path, bbox_inches="tight")
    return png_path
