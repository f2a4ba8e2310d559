"""PNG plots of the QA report: cut-outs with truth and detections marked, flux ratio, offsets, completeness.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from matplotlib.ticker import NullFormatter, ScalarFormatter

DPI = 100


def cutouts(image: np.ndarray, stamps: list[tuple[float, float, str]], truth_xy: np.ndarray, det_xy: np.ndarray,
            half_px: int, noise_jy: float, path: Path) -> Path:
    """A grid of stamps centred at (x, y) pixel positions, each titled; truth '+' (cyan), detections 'o' (lime).

    image: (ny, nx) Jy/beam; truth_xy, det_xy: (n, 2) pixel positions (x, y) of all truth sources and detections.
    """
    n = max(1, len(stamps))
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows), dpi=DPI)
    for k, (x, y, title) in enumerate(stamps):
        ax = fig.add_subplot(rows, cols, k + 1)
        x0, y0 = int(round(x)) - half_px, int(round(y)) - half_px
        ys, xs = slice(max(y0, 0), max(y0 + 2 * half_px + 1, 0)), slice(max(x0, 0), max(x0 + 2 * half_px + 1, 0))
        stamp = image[ys, xs]
        extent = (xs.start - 0.5, xs.start + stamp.shape[1] - 0.5, ys.start - 0.5, ys.start + stamp.shape[0] - 0.5)
        top = float(np.nanmax(stamp)) if stamp.size else 1.0
        ax.imshow(stamp, origin="lower", cmap="inferno", vmin=-3 * noise_jy, vmax=max(top, 5 * noise_jy),
                  extent=extent, interpolation="nearest")
        for points, marker, colour in ((truth_xy, "+", "cyan"), (det_xy, "o", "lime")):
            if len(points):
                near = (np.abs(points[:, 0] - x) <= half_px) & (np.abs(points[:, 1] - y) <= half_px)
                ax.scatter(points[near, 0], points[near, 1], marker=marker, s=60, facecolors="none" if marker == "o" else colour,
                           edgecolors=colour if marker == "o" else None, linewidths=1.2)
        ax.set_xlim(x - half_px, x + half_px)
        ax.set_ylim(y - half_px, y + half_px)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("cut-outs: truth + (cyan), PyBDSF detections o (lime)", fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    return path


def flux_ratio(true_flux_jy: np.ndarray, ratio: np.ndarray, noise_jy: float, label: str, path: Path) -> Path:
    """Recovered / true flux against the true flux, with the 10 sigma line."""
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI)
    ax = fig.add_subplot()
    ax.scatter(true_flux_jy, ratio, s=10, alpha=0.7)
    ax.axhline(1.0, color="k", linewidth=0.8)
    ax.axvline(10 * noise_jy, color="grey", linestyle=":", label="10 sigma")
    if len(ratio):
        ax.axhline(float(np.median(ratio)), color="C1", linestyle="--", label=f"median {np.median(ratio):.3f}")
    ax.set_xscale("log")
    ax.set_xlabel(f"true {label} flux density (Jy)")
    ax.set_ylabel("PyBDSF total / true")
    ax.legend(fontsize=8)
    fig.savefig(path, bbox_inches="tight")
    return path


def offsets(east_arcsec: np.ndarray, north_arcsec: np.ndarray, beam_arcsec: tuple[float, float, float],
            radius_arcsec: float, path: Path) -> Path:
    """Positional offsets (detection - truth), with the restoring beam's half-power ellipse and the match radius."""
    fig = Figure(figsize=(5.2, 5.0), dpi=DPI)
    ax = fig.add_subplot()
    ax.scatter(east_arcsec, north_arcsec, s=10, alpha=0.7)
    major, minor, pa_deg = beam_arcsec
    # East is +x here, north +y: a position angle (east of north) turns the major axis clockwise.
    ax.add_patch(Ellipse((0, 0), width=minor, height=major, angle=-pa_deg, fill=False, color="C1",
                         label="restoring beam (FWHM)"))
    ax.add_patch(Ellipse((0, 0), width=2 * radius_arcsec, height=2 * radius_arcsec, fill=False, color="grey",
                         linestyle=":", label="match radius"))
    ax.set_xlim(-1.1 * radius_arcsec, 1.1 * radius_arcsec)
    ax.set_ylim(-1.1 * radius_arcsec, 1.1 * radius_arcsec)
    ax.set_aspect("equal")
    ax.set_xlabel("dRA cos(Dec) (arcsec)")
    ax.set_ylabel("dDec (arcsec)")
    ax.legend(fontsize=7, loc="upper right")
    fig.savefig(path, bbox_inches="tight")
    return path


def completeness(completeness_rows: list[dict], reliability_rows: list[dict], path: Path,
                 xlabel: str = "signal-to-noise (flux / image rms)") -> Path:
    """Completeness (truth recovered) and reliability (detections real) per SNR bin."""
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI)
    ax = fig.add_subplot()
    for rows, label, marker in ((completeness_rows, "completeness", "o"), (reliability_rows, "reliability", "s")):
        centre = [np.sqrt(max(r["snr_min"], 1.0) * (r["snr_max"] or 2 * r["snr_min"])) for r in rows if r["n"]]
        value = [r["fraction"] for r in rows if r["n"]]
        ax.plot(centre, value, marker=marker, label=label)
    ax.axvline(10, color="grey", linestyle=":")
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction")
    ax.legend(fontsize=8)
    fig.savefig(path, bbox_inches="tight")
    return path


def line_recovery(truth_snr: np.ndarray, flux_ratio: np.ndarray, offset_planes: np.ndarray, snr_min: float,
                  path: Path) -> Path:
    """Two panels against the truth lines' signal-to-noise (n,): recovered / true integrated line flux, and the
    frequency offset (detection - truth) in planes; the quoted S/N limit dotted."""
    fig = Figure(figsize=(10.4, 4.0), dpi=DPI, layout="constrained")
    for k, (values, label, level) in enumerate(((flux_ratio, "finder / true integrated line flux", 1.0),
                                                (offset_planes, "frequency offset (planes)", 0.0))):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.scatter(truth_snr, values, s=10, alpha=0.7)
        ax.axhline(level, color="k", linewidth=0.8)
        ax.axvline(snr_min, color="grey", linestyle=":", label=f"S/N {snr_min:g}")
        if len(values):
            ax.axhline(float(np.median(values)), color="C1", linestyle="--", label=f"median {np.median(values):.3f}")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("true line signal-to-noise")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.savefig(path, bbox_inches="tight")
    return path


def peak_map(snr_map: np.ndarray, truth_xy: np.ndarray, det_xy: np.ndarray, path: Path) -> Path:
    """The (ny, nx) peak |I| / sigma over a cube's planes, truth lines '+' (cyan) and detections 'o' (lime)."""
    fig = Figure(figsize=(6.4, 6.0), dpi=DPI)
    ax = fig.add_subplot()
    shown = ax.imshow(snr_map, origin="lower", cmap="inferno", vmin=0, vmax=max(10.0, float(np.nanmax(snr_map, initial=0))),
                      interpolation="nearest")
    if len(truth_xy):
        ax.scatter(truth_xy[:, 0], truth_xy[:, 1], marker="+", s=60, color="cyan", linewidths=1.0)
    if len(det_xy):
        ax.scatter(det_xy[:, 0], det_xy[:, 1], marker="o", s=90, facecolors="none", edgecolors="lime", linewidths=1.0)
    fig.colorbar(shown, ax=ax, label="peak |I| / plane rms over the planes")
    ax.set_title("line QA: truth + (cyan), detections o (lime)", fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    return path
