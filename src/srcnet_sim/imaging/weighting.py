"""Imaging weights: natural, uniform and Briggs robust, on the uv grid of the image (WSClean's definition).

The weight grid has the size N of the padded image (WSClean pads by 1.2 and rounds up to a
multiple of 4); a sample (u, v) in wavelengths is folded to v >= 0 and falls in cell
x = floor(u N cell + N/2), y = floor(v N cell), as WSClean's ImageWeights does.
"""

from __future__ import annotations

import numpy as np

WEIGHTINGS = ("uniform", "natural", "briggs")
SPEED_OF_LIGHT_M_S = 299_792_458.0
PADDING = 1.2


def padded_size(npix: int, padding: float = PADDING) -> int:
    """WSClean's padded image size: ceil(npix * padding) rounded up to a multiple of 4."""
    size = int(np.ceil(npix * padding))
    return size + (-size) % 4


def imaging_weights(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix: int, cell_rad: float,
                    scheme: str = "uniform", robust: float = 0.0) -> np.ndarray:
    """(n_row, n_chan) float32 imaging weights from (n_row, n_chan) data weights.

    natural: w. uniform: w / W, with W the sum of data weights in the sample's uv cell.
    briggs: w / (1 + W s^2), s^2 = (5 * 10^-robust)^2 / (sum W^2 / sum w).
    Samples outside the weight grid get weight 0.
    """
    if scheme not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {scheme!r}")
    if scheme == "natural":
        return weight.astype(np.float32)
    npix = padded_size(npix)
    scale = freq_hz[None, :] / SPEED_OF_LIGHT_M_S * (npix * cell_rad)
    sign = np.where(uvw_m[:, 1:2] < 0, -1.0, 1.0)
    ix = np.floor(sign * uvw_m[:, 0:1] * scale + npix // 2).astype(np.int64)
    iy = np.floor(sign * uvw_m[:, 1:2] * scale).astype(np.int64)
    inside = (ix >= 0) & (ix < npix) & (iy < npix // 2) & (weight > 0)
    cells = iy[inside] * npix + ix[inside]
    w_in = weight[inside].astype(np.float64)
    grid = np.bincount(cells, weights=w_in, minlength=npix * (npix // 2))
    density = grid[cells]
    out = np.zeros(weight.shape, dtype=np.float64)
    if scheme == "uniform":
        out[inside] = w_in / density
    else:
        s2 = (5.0 * 10.0 ** (-robust)) ** 2 / ((grid**2).sum() / w_in.sum())
        out[inside] = w_in / (1.0 + density * s2)
    return out.astype(np.float32)
