"""The flagger of RFI=on: a per-baseline threshold on the residual, and its score against the true RFI.

A sample (baseline, channel) is flagged, all four correlations, when the residual r = DATA - (DATA without RFI
and noise) of XX or of YY exceeds `threshold_sigma` times the baseline's radiometer noise rms sigma (of one real
component): |r| > k sigma. It is the flagger of a pipeline with a perfect sky model and gains (an oracle on the
residual): a noise sample alone crosses it with probability exp(-k^2 / 2) (3.7e-6 at k = 5), and RFI is caught
where it stands above the noise by about k sigma.
"""

from __future__ import annotations

import numpy as np

# RfiScore fields, in order: samples, samples with true RFI (|rfi| >= k sigma), flagged, flagged with true RFI.
SCORE_FIELDS = ("samples", "rfi", "flagged", "flagged_rfi")


def flag_residual(residual: np.ndarray, rfi: np.ndarray, sigma: np.ndarray,
                  threshold_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The flags of one time step and their score.

    Args:
        residual: (n_bl, n_chan, 4) DATA minus the data without RFI and noise, Jy.
        rfi: (n_bl, n_chan) the RFI added to XX and YY, Jy (complex).
        sigma: (n_bl,) radiometer rms of one real component, Jy.
        threshold_sigma: k.

    Returns:
        flags: (n_bl, n_chan, 4) bool.
        score: (4,) int64 counts of SCORE_FIELDS.
    """
    limit = threshold_sigma * sigma[:, None]
    flagged = (np.abs(residual[:, :, 0]) > limit) | (np.abs(residual[:, :, 3]) > limit)
    true_rfi = np.abs(rfi) >= limit
    score = np.array([flagged.size, np.count_nonzero(true_rfi), np.count_nonzero(flagged),
                      np.count_nonzero(flagged & true_rfi)], dtype=np.int64)
    return np.repeat(flagged[:, :, None], 4, axis=2), score


def describe(score: np.ndarray, threshold_sigma: float) -> str:
    """One log line: completeness (true RFI flagged) and false positives (flagged without true RFI)."""
    samples, rfi, flagged, flagged_rfi = (int(v) for v in score)
    clean = samples - rfi
    completeness = flagged_rfi / rfi if rfi else float("nan")
    false_rate = (flagged - flagged_rfi) / clean if clean else float("nan")
    return (f"flags: {flagged} of {samples} samples ({flagged / max(samples, 1):.3%}) above {threshold_sigma:g} sigma; "
            f"true RFI (|rfi| >= {threshold_sigma:g} sigma) in {rfi}: completeness {completeness:.4f}, "
            f"false positives {flagged - flagged_rfi} ({false_rate:.2e} of the samples without)")
