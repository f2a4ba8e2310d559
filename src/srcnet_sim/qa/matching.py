"""Cross-match detections with the truth, and the statistics of the match (plain arrays in, plain numbers out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

# Signal-to-noise bin edges (flux / image rms) of the completeness and reliability tables.
SNR_EDGES = (0.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, np.inf)


@dataclass(frozen=True)
class Match:
    """Pairs (truth[i], detection[j]) that are each other's nearest neighbour within the radius.

    truth_index, detection_index: (n_pair,) indices; separation_deg: (n_pair,) their distance.
    """

    truth_index: np.ndarray
    detection_index: np.ndarray
    separation_deg: np.ndarray


def mutual_nearest(truth_ra: np.ndarray, truth_dec: np.ndarray, det_ra: np.ndarray, det_dec: np.ndarray,
                   radius_deg: float) -> Match:
    """Match each detection with its nearest truth source and keep pairs that choose each other within radius_deg.

    A detection whose nearest truth source prefers another detection is unmatched (a duplicate or a
    spurious detection); a truth source whose nearest detection prefers another source is missed.
    """
    empty = Match(np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
    if len(truth_ra) == 0 or len(det_ra) == 0:
        return empty
    truth = SkyCoord(truth_ra * u.deg, truth_dec * u.deg)
    found = SkyCoord(det_ra * u.deg, det_dec * u.deg)
    to_truth, sep, _ = found.match_to_catalog_sky(truth)  # per detection: nearest truth
    to_detection, _, _ = truth.match_to_catalog_sky(found)  # per truth: nearest detection
    det = np.arange(len(det_ra))
    keep = (to_detection[to_truth] == det) & (sep.deg <= radius_deg)
    return Match(np.asarray(to_truth[keep]), det[keep], np.asarray(sep.deg[keep]))


def fraction_by_snr(snr: np.ndarray, hit: np.ndarray, noise_jy: float) -> list[dict]:
    """Per SNR bin: edges (SNR and Jy), count, hits and their fraction (None where the bin is empty)."""
    rows = []
    for low, high in zip(SNR_EDGES[:-1], SNR_EDGES[1:], strict=True):
        inside = (snr >= low) & (snr < high)
        n = int(inside.sum())
        k = int(hit[inside].sum())
        rows.append({"snr_min": low, "snr_max": None if np.isinf(high) else high,
                     "flux_min_jy": low * noise_jy, "flux_max_jy": None if np.isinf(high) else high * noise_jy,
                     "n": n, "hits": k, "fraction": k / n if n else None})
    return rows


def percentiles(values: np.ndarray) -> dict:
    """Median and 16th/84th percentiles (None for no values)."""
    if len(values) == 0:
        return {"median": None, "p16": None, "p84": None, "n": 0}
    p16, p50, p84 = np.percentile(values, [16, 50, 84])
    return {"median": float(p50), "p16": float(p16), "p84": float(p84), "n": int(len(values))}


def offsets_arcsec(truth_ra: np.ndarray, truth_dec: np.ndarray, det_ra: np.ndarray, det_dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dRA cos(Dec), dDec) of detections from their truth positions, arcsec (tangent plane at the truth)."""
    truth = SkyCoord(truth_ra * u.deg, truth_dec * u.deg)
    east, north = truth.spherical_offsets_to(SkyCoord(det_ra * u.deg, det_dec * u.deg))
    return east.to_value(u.arcsec), north.to_value(u.arcsec)



def nearest_in_space_and_frequency(truth_ra: np.ndarray, truth_dec: np.ndarray, truth_freq_hz: np.ndarray,
                                   window_hz: np.ndarray, det_ra: np.ndarray, det_dec: np.ndarray,
                                   det_freq_hz: np.ndarray, radius_deg: float) -> Match:
    """One-to-one pairs of line sources: a truth line (i) and a detection (j) are candidates when they lie within
    radius_deg on the sky and |det_freq - truth_freq| <= window_hz[i]; candidates pair closest first by
    (separation / radius)^2 + (frequency offset / window)^2, each source and detection used once.

    truth_*: (n_truth,) deg, Hz; window_hz: (n_truth,) Hz; det_*: (n_det,) deg, Hz.
    """
    empty = Match(np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
    if len(truth_ra) == 0 or len(det_ra) == 0:
        return empty
    truth = SkyCoord(truth_ra * u.deg, truth_dec * u.deg)
    found = SkyCoord(det_ra * u.deg, det_dec * u.deg)
    ti, dj, sep, _ = found.search_around_sky(truth, radius_deg * u.deg)
    dnu = np.abs(det_freq_hz[dj] - truth_freq_hz[ti])
    near = dnu <= window_hz[ti]
    ti, dj, sep_deg, dnu = ti[near], dj[near], sep.deg[near], dnu[near]
    cost = (sep_deg / radius_deg) ** 2 + (dnu / window_hz[ti]) ** 2
    used_t, used_d, pairs = set(), set(), []
    for k in np.argsort(cost, kind="stable"):
        if ti[k] not in used_t and dj[k] not in used_d:
            used_t.add(ti[k])
            used_d.add(dj[k])
            pairs.append(k)
    pairs = np.array(pairs, dtype=int)
    if pairs.size == 0:
        return empty
    return Match(np.asarray(ti[pairs], dtype=int), np.asarray(dj[pairs], dtype=int), np.asarray(sep_deg[pairs]))
