"""The line QA report of an image cube against a truth catalogue: JSON summary, detections catalogue, PNG plots, a
few log lines (the cube counterpart of qa.report, whose style and products it follows).

Method (stated in the JSON too):
- qa.line_finder finds line sources in the cube (smooth-and-clip, 5 sigma; its docstring: method and limits).
- Truth lines (LINE_FLUX != 0) count when their position lies EDGE_MARGIN_BEAMS restoring beams inside the image and
  their centre frequency within the cube's band; detections count when they lie as far inside the image.
- A truth line and a detection match when they lie within MATCH_RADIUS_BEAMS x BMAJ (the median plane's restoring
  beam) and their centre frequencies differ by at most half the true W20 plus one plane; closest pairs first
  (qa.matching.nearest_in_space_and_frequency), each used once.
- The true flux is the truth's LINE_S_APP (Jy Hz: the line within the band as the array saw it, primary beams
  applied) in a srcnet-sim truth file, else the catalogue's intrinsic LINE_FLUX (said so).
- A truth line's signal-to-noise: true flux / (sigma dnu sqrt(max(W20 / dnu, 1))), sigma the median plane rms
  (1.4826 MAD) and dnu the plane width: the S/N of its spectrum at the peak pixel of an unresolved source summed
  over its W20. A detection's: its measured flux / its flux error (line_finder).
- Completeness: matched fraction of the truth lines per S/N bin, quoted above SNR_QUOTED; reliability: matched
  fraction of the detections per S/N bin; the negative components the finder found the same way on -I (what noise
  alone makes) are counted in the same bins. Flux ratio: measured / true integrated flux; frequency offsets in
  planes and km/s (radio convention at the true frequency, -c dnu / nu); W20 ratio; position offsets in beams.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from srcnet_sim import __version__
from srcnet_sim.errors import QAError
from srcnet_sim.products.truth import read_catalogue_as_truth, truth_table
from srcnet_sim.qa import matching, plots
from srcnet_sim.qa.cube_io import CubeGeometry
from srcnet_sim.qa.line_finder import FinderParameters, FinderResult, LineDetections, find_lines

MATCH_RADIUS_BEAMS = 1.0
EDGE_MARGIN_BEAMS = 3.0
SNR_QUOTED = 10.0
C_KM_S = 299_792.458
SUMMARY_NAME = "line-qa.json"


@dataclass(frozen=True)
class LineTruth:
    """Truth lines: (n,) positions (deg), integrated flux the cube should show (Jy Hz), centre frequency and W20 (Hz).

    apparent: True for a truth file's LINE_S_APP (primary beams applied), False for a catalogue's LINE_FLUX;
    noise_simulated: the truth header's NOISE (None when the catalogue does not say)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy_hz: np.ndarray
    freq_hz: np.ndarray
    w20_hz: np.ndarray
    apparent: bool
    noise_simulated: bool | None


def read_line_truth(path: Path) -> LineTruth:
    """The lines (LINE_FLUX != 0) of a srcnet-sim truth file, or of any catalogue SKY_MODEL reads."""
    path = Path(path)
    table = truth_table(path)
    if table is not None:
        data, head = table
        names = set(data.columns.names)
        if not {"LINE_FLUX", "LINE_FREQ", "LINE_W20"} <= names:
            raise QAError(f"qa: {path.name} has no line columns (LINE_FLUX, LINE_FREQ, LINE_W20)")
        has = np.asarray(data["LINE_FLUX"], dtype=float) != 0
        column = lambda name: np.asarray(data[name], dtype=float)[has]  # noqa: E731
        apparent = "LINE_S_APP" in names
        return LineTruth(column("RA"), column("DEC"), column("LINE_S_APP" if apparent else "LINE_FLUX"),
                         column("LINE_FREQ"), column("LINE_W20"), apparent,
                         head.get("NOISE") == "on" if "NOISE" in head else None)
    sky = read_catalogue_as_truth(path)
    has = sky.line_flux_jy_hz != 0
    return LineTruth(np.degrees(sky.ra_rad[has]), np.degrees(sky.dec_rad[has]), sky.line_flux_jy_hz[has],
                     sky.line_freq_hz[has], sky.line_w20_hz[has], False, None)


@dataclass(frozen=True)
class LineReport:
    """The summary (as written to JSON) and the files written, summary first."""

    summary: dict
    files: list[Path]


def _inside(geometry: CubeGeometry, ra: np.ndarray, dec: np.ndarray, margin_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) pixel positions (x, y) and whether each lies margin_px inside the image."""
    if len(ra) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    x, y = geometry.celestial.world_to_pixel_values(ra, dec)
    _, ny, nx = geometry.shape
    inside = (x >= margin_px) & (x <= nx - 1 - margin_px) & (y >= margin_px) & (y <= ny - 1 - margin_px)
    return np.column_stack([x, y]), inside


def _rows(snr: np.ndarray, hit: np.ndarray) -> list[dict]:
    """matching.fraction_by_snr without its flux columns (a line's flux limit depends on its width)."""
    rows = matching.fraction_by_snr(snr, hit, 1.0)
    return [{k: v for k, v in row.items() if not k.startswith("flux_")} for row in rows]


def _selected(rows: list[dict], snr_min: float) -> dict:
    n = sum(r["n"] for r in rows if r["snr_min"] >= snr_min)
    hits = sum(r["hits"] for r in rows if r["snr_min"] >= snr_min)
    return {"snr_min": snr_min, "n": n, "hits": hits, "fraction": hits / n if n else None}


def write_detections(found: LineDetections, params: FinderParameters, path: Path) -> Path:
    """The detections as a FITS binary table (HDU LINES, one row each, units in TUNITn)."""
    columns = [fits.Column(name, "K" if name.startswith("N_") else "D", unit=unit or None, array=values)
               for name, (values, unit) in found.columns().items()]
    table = fits.BinTableHDU.from_columns(columns, name="LINES")
    table.header["ORIGIN"] = f"srcnet-sim {__version__}"
    table.header["THRESH"] = (params.threshold_sigma, "[sigma] threshold of the smoothed planes")
    table.header.add_history("finder " + params.describe())
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    return path


def make_line_report(cube_path: Path, truth_path: Path, out_dir: Path, prefix: str = "",
                     params: FinderParameters | None = None) -> LineReport:
    """Find lines in the FITS cube `cube_path`, compare them with `truth_path`, write `<prefix>line-qa.json`, the
    detections `<prefix>line-qa-detections.fits` and PNGs in out_dir.

    Raises QAError (one line) when the cube is not a Jy/beam cube with beams or the truth has no line columns,
    UserInputError("TRUTH") when the catalogue cannot be read.
    """
    cube_path, truth_path, out_dir = Path(cube_path), Path(truth_path), Path(out_dir)
    truth = read_line_truth(truth_path)
    result = find_lines(cube_path, params)
    summary, xy = _summarise(result, truth, cube_path.name, truth_path.name)
    json_path = out_dir / f"{prefix}{SUMMARY_NAME}"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    files = [json_path]
    files.append(write_detections(result.detections, result.parameters, out_dir / f"{prefix}line-qa-detections.fits"))
    files.append(plots.completeness(summary["completeness"], summary["reliability"],
                                    out_dir / f"{prefix}line-qa-completeness.png",
                                    xlabel="line signal-to-noise (true, or measured flux / its error)"))
    files.append(plots.line_recovery(xy["matched_snr"], xy["flux_ratio"], xy["offset_planes"], SNR_QUOTED,
                                     out_dir / f"{prefix}line-qa-recovery.png"))
    files.append(plots.peak_map(result.peak_snr_map, xy["truth"], xy["detections"], out_dir / f"{prefix}line-qa-map.png"))
    return LineReport(summary=summary, files=files)


def _summarise(result: FinderResult, truth: LineTruth, cube_name: str, truth_name: str) -> tuple[dict, dict]:
    """The JSON summary, and the arrays the plots need."""
    g, found, negatives = result.geometry, result.detections, result.negatives
    beam_px = g.beam_major_px
    major_deg = beam_px * g.cell_deg
    width = g.channel_width_hz
    noise = float(np.nanmedian(result.noise_jy_per_beam))
    margin = EDGE_MARGIN_BEAMS * beam_px
    band = (g.freq_hz.min() - width / 2, g.freq_hz.max() + width / 2)
    truth_xy, truth_in = _inside(g, truth.ra_deg, truth.dec_deg, margin)
    truth_in &= (truth.freq_hz >= band[0]) & (truth.freq_hz <= band[1])
    det_xy, det_in = _inside(g, found.ra_deg, found.dec_deg, margin)
    _, neg_in = _inside(g, negatives.ra_deg, negatives.dec_deg, margin)
    t_idx, d_idx = np.flatnonzero(truth_in), np.flatnonzero(det_in)
    window = 0.5 * truth.w20_hz + width
    match = matching.nearest_in_space_and_frequency(
        truth.ra_deg[t_idx], truth.dec_deg[t_idx], truth.freq_hz[t_idx], window[t_idx], found.ra_deg[d_idx],
        found.dec_deg[d_idx], found.freq_hz[d_idx], MATCH_RADIUS_BEAMS * major_deg)
    mt, md = t_idx[match.truth_index], d_idx[match.detection_index]
    truth_snr = truth.flux_jy_hz / (noise * width * np.sqrt(np.maximum(truth.w20_hz / width, 1.0)))
    det_snr = found.snr
    completeness = _rows(truth_snr[t_idx], np.isin(t_idx, mt))
    reliability = _rows(det_snr[d_idx], np.isin(d_idx, md))
    negative_rows = _rows(negatives.snr[neg_in], np.zeros(int(neg_in.sum()), dtype=bool))
    for row, neg in zip(reliability, negative_rows, strict=True):
        row["negative"] = neg["n"]
    ratio = found.line_flux_jy_hz[md] / truth.flux_jy_hz[mt]
    dnu = found.freq_hz[md] - truth.freq_hz[mt]
    bright = truth_snr[mt] >= SNR_QUOTED
    pct = matching.percentiles
    summary = {
        "cube": cube_name,
        "truth": truth_name,
        "software": {"srcnet-sim": __version__},
        "method": {
            "finder": result.parameters.describe(),
            "match": f"within {MATCH_RADIUS_BEAMS} x BMAJ and |dnu| <= W20/2 + 1 plane, closest pairs first",
            "edge_margin_beams": EDGE_MARGIN_BEAMS,
            "noise": "1.4826 x MAD of each plane",
            "flux_reference": ("truth LINE_S_APP: the line within the band, primary beams applied" if truth.apparent
                               else "catalogue LINE_FLUX, intrinsic (not a srcnet-sim truth file)"),
            "snr": "truth: flux / (rms x plane width x sqrt(max(W20 / width, 1))); detections: flux / flux error",
            "velocity": "radio convention at the true frequency: dv = -c dnu / nu",
        },
        "cube_header": {
            "ra_deg": float(g.header.get("CRVAL1", np.nan)), "dec_deg": float(g.header.get("CRVAL2", np.nan)),
            "freq_first_hz": float(g.freq_hz[0]), "freq_last_hz": float(g.freq_hz[-1]), "plane_width_hz": width,
            "planes": int(g.shape[0]), "npix": [int(g.shape[2]), int(g.shape[1])], "cell_arcsec": g.cell_deg * 3600,
            "date_obs": g.header.get("DATE-OBS"), "telescope": str(g.header.get("TELESCOP", "")),
            "continuum_subtracted": g.header.get("SSCONSUB"),
        },
        "flux_reference": "apparent" if truth.apparent else "intrinsic",
        "restoring_beam": {"major_arcsec_median": float(np.median(g.beam_major_deg)) * 3600,
                           "major_arcsec_range": [float(g.beam_major_deg.min()) * 3600, float(g.beam_major_deg.max()) * 3600],
                           "minor_arcsec_median": float(np.median(g.beam_minor_deg)) * 3600},
        "match_radius_arcsec": MATCH_RADIUS_BEAMS * major_deg * 3600,
        "counts": {"truth_lines": int(len(truth.ra_deg)), "truth_in_cube": int(truth_in.sum()),
                   "detections": int(len(found)), "detections_in_image": int(det_in.sum()), "matched": int(len(mt)),
                   "negative_components": int(len(negatives)), "negative_in_image": int(neg_in.sum())},
        f"completeness_above_snr_{SNR_QUOTED:g}": _selected(completeness, SNR_QUOTED),
        f"reliability_above_snr_{SNR_QUOTED:g}": _selected(reliability, SNR_QUOTED),
        "completeness": completeness,
        "reliability": reliability,
        "flux_ratio": {"all": pct(ratio), f"above_snr_{SNR_QUOTED:g}": pct(ratio[bright])},
        "freq_offset_planes": pct(dnu / width),
        "freq_offset_km_s": pct(-C_KM_S * dnu / truth.freq_hz[mt]),
        "w20_ratio": pct(found.w20_hz[md] / truth.w20_hz[mt]),
        "offset_beams": pct(match.separation_deg / major_deg),
        "noise": {"median_plane_jy_per_beam": noise,
                  "min_plane_jy_per_beam": float(np.nanmin(result.noise_jy_per_beam)),
                  "max_plane_jy_per_beam": float(np.nanmax(result.noise_jy_per_beam)),
                  "noise_simulated": truth.noise_simulated},
    }
    xy = {"truth": truth_xy[truth_in], "detections": det_xy[det_in] if len(det_xy) else det_xy,
          "matched_snr": truth_snr[mt], "flux_ratio": ratio, "offset_planes": dnu / width}
    return summary, xy


def summary_lines(summary: dict) -> list[str]:
    """The few lines a run logs about its cube."""
    key = f"{SNR_QUOTED:g}"
    c, r = summary[f"completeness_above_snr_{key}"], summary[f"reliability_above_snr_{key}"]
    ratio, dnu, dv = summary["flux_ratio"][f"above_snr_{key}"], summary["freq_offset_planes"], summary["freq_offset_km_s"]
    counts = summary["counts"]
    pct = lambda f: "n/a" if f is None else f"{100 * f:.1f} %"  # noqa: E731
    num = lambda v, fmt: "n/a" if v is None else format(v, fmt)  # noqa: E731
    return [
        f"qa: line finder found {counts['detections']} lines ({counts['negative_components']} negative components: "
        f"what noise alone makes); {counts['matched']} of {counts['truth_in_cube']} truth lines in the cube matched",
        f"qa: lines above S/N {key}: completeness {pct(c['fraction'])} ({c['hits']}/{c['n']}), "
        f"reliability {pct(r['fraction'])} ({r['hits']}/{r['n']})",
        f"qa: recovered/true {summary['flux_reference']} line flux above S/N {key}: median {num(ratio['median'], '.4f')} "
        f"(16-84 %: {num(ratio['p16'], '.3f')}-{num(ratio['p84'], '.3f')}); median frequency offset "
        f"{num(dnu['median'], '.3f')} planes ({num(dv['median'], '.3g')} km/s)",
        f"qa: cube plane rms {summary['noise']['median_plane_jy_per_beam']:.3g} Jy/beam (median over the planes); "
        f"restoring beam {summary['restoring_beam']['major_arcsec_median']:.3g} arcsec (median BMAJ)",
    ]
