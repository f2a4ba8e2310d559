"""The QA report of a restored image against a truth catalogue: JSON summary, PNG plots, a few log lines.

Method (stated in the JSON too):
- PyBDSF finds sources in the image (islands 3 sigma, peaks 5 sigma of its rms map).
- Truth sources and detections count when they lie at least EDGE_MARGIN_BEAMS restoring beams inside the image.
- A detection and a truth source match when each is the other's nearest neighbour and they lie within
  MATCH_RADIUS_BEAMS x BMAJ (the restoring beam's FWHM major axis).
- The image rms is 1.4826 x MAD of the pixels; signal-to-noise is (true or detected total flux) / rms.
- Completeness: matched fraction of the truth sources per SNR bin; reliability: matched fraction of the
  detections per SNR bin; flux ratio: PyBDSF Total_flux / the truth's band-averaged apparent flux
  (S_APP_MEAN: primary beams applied); offsets in units of BMAJ.
- Expected noise: the image header's SSNOISE (srcnet-sim images: the rms the data weights predict for the
  dirty image, see imaging.imager), compared with the measured rms when the truth says NOISE=on.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from srcnet_sim import __version__
from srcnet_sim.imaging.clean import robust_sigma
from srcnet_sim.products.truth import read_reference
from srcnet_sim.qa import matching, plots
from srcnet_sim.qa.finder import THRESH_ISLAND, THRESH_PIXEL, QAError, find_sources, import_bdsf

MATCH_RADIUS_BEAMS = 0.5
EDGE_MARGIN_BEAMS = 3.0
STAMPS = {"matched": 6, "missed": 3, "spurious": 3}
STAMP_HALF_BEAMS = 4.0
SUMMARY_NAME = "qa.json"


@dataclass(frozen=True)
class Report:
    """The summary (as written to JSON) and the files written, summary first."""

    summary: dict
    files: list[Path]


@dataclass(frozen=True)
class _Image:
    plane: np.ndarray  # (ny, nx) Jy/beam
    header: fits.Header
    wcs: WCS
    beam_deg: tuple[float, float, float]  # BMAJ, BMIN (deg), BPA (deg)
    freq_hz: float


def _read_image(path: Path) -> _Image:
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            data = np.asarray(hdul[0].data, dtype=np.float64)
    except (OSError, TypeError) as exc:
        raise QAError(f"--qa: {path} is not a readable FITS image ({exc})") from exc
    if data.ndim < 2 or not header.get("BMAJ"):
        raise QAError(f"--qa: {path} is not a restored image (needs 2 or more axes and BMAJ/BMIN in its header)")
    plane = data.reshape(-1, *data.shape[-2:])[0]
    freq = next((float(header[f"CRVAL{i}"]) for i in range(3, header.get("NAXIS", 0) + 1)
                 if str(header.get(f"CTYPE{i}", "")).startswith("FREQ")), float(header.get("RESTFRQ", 0.0)))
    beam = (float(header["BMAJ"]), float(header.get("BMIN", header["BMAJ"])), float(header.get("BPA", 0.0)))
    return _Image(plane=plane, header=header, wcs=WCS(header).celestial, beam_deg=beam, freq_hz=freq)


def _inside(image: _Image, ra: np.ndarray, dec: np.ndarray, margin_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) pixel positions (x, y) and whether each lies margin_px inside the image on a finite pixel."""
    if len(ra) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    x, y = image.wcs.world_to_pixel_values(ra, dec)
    ny, nx = image.plane.shape
    inside = (x >= margin_px) & (x <= nx - 1 - margin_px) & (y >= margin_px) & (y <= ny - 1 - margin_px)
    ix, iy = np.clip(np.round(x).astype(int), 0, nx - 1), np.clip(np.round(y).astype(int), 0, ny - 1)
    inside &= np.isfinite(image.plane[iy, ix])
    return np.column_stack([x, y]), inside


def _selected(rows: list[dict], snr_min: float) -> dict:
    """Totals over the bins at or above snr_min."""
    n = sum(r["n"] for r in rows if r["snr_min"] >= snr_min)
    hits = sum(r["hits"] for r in rows if r["snr_min"] >= snr_min)
    return {"snr_min": snr_min, "n": n, "hits": hits, "fraction": hits / n if n else None}


def make_report(image_path: Path, truth_path: Path, out_dir: Path, prefix: str = "") -> Report:
    """Find sources in `image_path`, compare them with `truth_path`, write `<prefix>qa.json` and PNGs in out_dir.

    Raises QAError (one line) when PyBDSF is missing or fails, or the image is not a restored image.
    """
    image_path, truth_path, out_dir = Path(image_path), Path(truth_path), Path(out_dir)
    bdsf = import_bdsf()
    image = _read_image(image_path)
    reference = read_reference(truth_path, image.freq_hz)
    with tempfile.TemporaryDirectory(prefix="srcnet-sim-pybdsf-") as work:
        found = find_sources(image_path, Path(work))
        detections_file = None
        if found.catalogue is not None:
            detections_file = out_dir / f"{prefix}qa-detections.fits"
            shutil.copyfile(found.catalogue, detections_file)

    major_deg, minor_deg, pa_deg = image.beam_deg
    cell_deg = abs(float(image.header.get("CDELT2", major_deg)))
    beam_px = major_deg / cell_deg
    noise = robust_sigma(image.plane[np.isfinite(image.plane)])
    truth_xy, truth_in = _inside(image, reference.ra_deg, reference.dec_deg, EDGE_MARGIN_BEAMS * beam_px)
    det_xy, det_in = _inside(image, found.ra_deg, found.dec_deg, EDGE_MARGIN_BEAMS * beam_px)
    t_idx, d_idx = np.flatnonzero(truth_in), np.flatnonzero(det_in)
    radius_deg = MATCH_RADIUS_BEAMS * major_deg
    match = matching.mutual_nearest(reference.ra_deg[t_idx], reference.dec_deg[t_idx], found.ra_deg[d_idx],
                                    found.dec_deg[d_idx], radius_deg)
    mt, md = t_idx[match.truth_index], d_idx[match.detection_index]  # indices into the full lists
    truth_hit = np.isin(t_idx, mt)
    det_hit = np.isin(d_idx, md)
    truth_snr = reference.flux_jy[t_idx] / noise
    det_snr = found.total_flux_jy[d_idx] / noise
    ratio = found.total_flux_jy[md] / reference.flux_jy[mt]
    bright = reference.flux_jy[mt] >= 10 * noise
    east, north = matching.offsets_arcsec(reference.ra_deg[mt], reference.dec_deg[mt], found.ra_deg[md], found.dec_deg[md])
    completeness = matching.fraction_by_snr(truth_snr, truth_hit, noise)
    reliability = matching.fraction_by_snr(det_snr, det_hit, noise)
    expected = image.header.get("SSNOISE")
    flux_label = "apparent" if reference.apparent else "intrinsic"
    summary = {
        "image": image_path.name,
        "truth": truth_path.name,
        "software": {"srcnet-sim": __version__, "bdsf": getattr(bdsf, "__version__", "unknown")},
        "method": {
            "finder": f"PyBDSF process_image(thresh_isl={THRESH_ISLAND}, thresh_pix={THRESH_PIXEL})",
            "match": f"mutual nearest neighbours within {MATCH_RADIUS_BEAMS} x BMAJ",
            "edge_margin_beams": EDGE_MARGIN_BEAMS,
            "noise": "1.4826 x MAD of the image pixels",
            "flux_reference": ("truth S_APP_MEAN: band-averaged apparent flux, primary beams applied" if reference.apparent
                               else "catalogue Stokes I at the image frequency, no primary beam (not a srcnet-sim truth file)"),
            "snr": "true (completeness) or detected (reliability) total flux / image rms",
        },
        "image_header": {
            "ra_deg": float(image.header.get("CRVAL1", np.nan)), "dec_deg": float(image.header.get("CRVAL2", np.nan)),
            "freq_hz": image.freq_hz, "bandwidth_hz": float(abs(image.header.get("CDELT3", 0.0))),
            "date_obs": image.header.get("DATE-OBS"), "date_end": image.header.get("DATE-END", image.header.get("DATE-OBS")),
            "npix": list(image.plane.shape[::-1]), "cell_arcsec": cell_deg * 3600,
            "telescope": str(image.header.get("TELESCOP", "")),
        },
        "flux_reference": flux_label,
        "restoring_beam": {"major_arcsec": major_deg * 3600, "minor_arcsec": minor_deg * 3600, "pa_deg": pa_deg},
        "match_radius_arcsec": radius_deg * 3600,
        "counts": {"truth_in_image": int(truth_in.sum()), "detections": int(len(found.ra_deg)),
                   "detections_in_image": int(det_in.sum()), "matched": int(len(mt))},
        "completeness_above_10_sigma": _selected(completeness, 10.0),
        "reliability_above_10_sigma": _selected(reliability, 10.0),
        "completeness": completeness,
        "reliability": reliability,
        "flux_ratio": {"all": matching.percentiles(ratio), "above_10_sigma": matching.percentiles(ratio[bright])},
        "offset_beams": matching.percentiles(match.separation_deg / major_deg),
        "offset_arcsec": {"median_ra": float(np.median(east)) if len(east) else None,
                          "median_dec": float(np.median(north)) if len(north) else None},
        "noise": {
            "measured_jy_per_beam": noise,
            "pybdsf_clipped_rms_jy_per_beam": found.rms_jy if np.isfinite(found.rms_jy) else None,
            "expected_jy_per_beam": float(expected) if expected is not None else None,
            "measured_over_expected": noise / float(expected) if expected else None,
            "noise_simulated": reference.noise_simulated,
        },
    }
    json_path = out_dir / f"{prefix}{SUMMARY_NAME}"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    files = [json_path]
    stamps = _stamps(reference.flux_jy, found.total_flux_jy, truth_xy, det_xy, t_idx[~truth_hit], d_idx[~det_hit], mt)
    half = int(np.ceil(STAMP_HALF_BEAMS * beam_px))
    files.append(plots.cutouts(image.plane, stamps, truth_xy[truth_in], det_xy[det_in] if len(det_xy) else det_xy,
                               half, noise, out_dir / f"{prefix}qa-cutouts.png"))
    files.append(plots.flux_ratio(reference.flux_jy[mt], ratio, noise, flux_label, out_dir / f"{prefix}qa-flux-ratio.png"))
    files.append(plots.offsets(east, north, (major_deg * 3600, minor_deg * 3600, pa_deg), radius_deg * 3600,
                               out_dir / f"{prefix}qa-offsets.png"))
    files.append(plots.completeness(completeness, reliability, out_dir / f"{prefix}qa-completeness.png"))
    if detections_file is not None:
        files.append(detections_file)
    return Report(summary=summary, files=files)


def _stamps(truth_flux: np.ndarray, det_flux: np.ndarray, truth_xy: np.ndarray, det_xy: np.ndarray,
            missed: np.ndarray, spurious: np.ndarray, matched: np.ndarray) -> list[tuple[float, float, str]]:
    """Cut-out centres: the brightest matched truth sources, the brightest missed ones, the brightest spurious detections."""
    chosen = []
    for kind, indices, flux, xy in (("matched", matched, truth_flux, truth_xy), ("missed", missed, truth_flux, truth_xy),
                                    ("spurious", spurious, det_flux, det_xy)):
        for i in indices[np.argsort(-flux[indices])][:STAMPS[kind]]:
            chosen.append((float(xy[i, 0]), float(xy[i, 1]), f"{kind} {flux[i] * 1e3:.3g} mJy"))
    return chosen


def summary_lines(summary: dict) -> list[str]:
    """The few lines a run logs about its cleaned image."""
    c, r = summary["completeness_above_10_sigma"], summary["reliability_above_10_sigma"]
    ratio, offset, noise, beam = summary["flux_ratio"]["above_10_sigma"], summary["offset_beams"], summary["noise"], summary["restoring_beam"]
    pct = lambda f: "n/a" if f is None else f"{100 * f:.1f} %"  # noqa: E731
    num = lambda v, fmt: "n/a" if v is None else format(v, fmt)  # noqa: E731
    counts = summary["counts"]
    expected = noise["expected_jy_per_beam"]
    noise_note = ("thermal noise simulated" if noise["noise_simulated"] else
                  "no thermal noise simulated: the rms is deconvolution residual" if noise["noise_simulated"] is False else "")
    return [
        f"qa: PyBDSF found {counts['detections']} sources; {counts['matched']} of {counts['truth_in_image']} truth sources "
        f"in the image matched within {summary['match_radius_arcsec']:.3g} arcsec",
        f"qa: above 10 sigma completeness {pct(c['fraction'])} ({c['hits']}/{c['n']}), "
        f"reliability {pct(r['fraction'])} ({r['hits']}/{r['n']})",
        f"qa: recovered/true {summary['flux_reference']} flux above 10 sigma: median "
        f"{num(ratio['median'], '.4f')} (16-84 %: {num(ratio['p16'], '.3f')}-{num(ratio['p84'], '.3f')}); "
        f"median offset {num(offset['median'], '.3f')} beam",
        f"qa: image rms {noise['measured_jy_per_beam']:.3g} Jy/beam, expected from the weights "
        f"{num(expected, '.3g')} Jy/beam ({noise_note}); restoring beam {beam['major_arcsec']:.3g} x "
        f"{beam['minor_arcsec']:.3g} arcsec, PA {beam['pa_deg']:.1f} deg",
    ]
