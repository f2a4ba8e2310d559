"""Direction-independent Jones matrices applied to the visibilities of one time step: V_pq <- J_p V_pq J_q^H."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def _apply(vis: np.ndarray, jones: np.ndarray, ant1: np.ndarray, ant2: np.ndarray) -> None:
    for b in numba.prange(vis.shape[0]):
        p, q = ant1[b], ant2[b]
        for k in range(vis.shape[1]):
            a, c = jones[p, k], jones[q, k]
            v00, v01, v10, v11 = (complex(vis[b, k, 0]), complex(vis[b, k, 1]), complex(vis[b, k, 2]),
                                  complex(vis[b, k, 3]))
            # M = J_p V, then M J_q^H
            m00 = a[0, 0] * v00 + a[0, 1] * v10
            m01 = a[0, 0] * v01 + a[0, 1] * v11
            m10 = a[1, 0] * v00 + a[1, 1] * v10
            m11 = a[1, 0] * v01 + a[1, 1] * v11
            c00, c01, c10, c11 = np.conj(c[0, 0]), np.conj(c[0, 1]), np.conj(c[1, 0]), np.conj(c[1, 1])
            vis[b, k, 0] = m00 * c00 + m01 * c01
            vis[b, k, 1] = m00 * c10 + m01 * c11
            vis[b, k, 2] = m10 * c00 + m11 * c01
            vis[b, k, 3] = m10 * c10 + m11 * c11


def apply_jones(vis: np.ndarray, jones: np.ndarray, ant1: np.ndarray, ant2: np.ndarray) -> None:
    """Corrupt `vis` in place: V_pq <- J_p V_pq J_q^H, computed in complex128 and stored in vis's precision.

    Args:
        vis: (n_bl, n_chan, 4) complex64 or complex128, correlations XX, XY, YX, YY (the 2x2 [[XX, XY], [YX, YY]]).
        jones: (n_dish, n_chan, 2, 2) complex128 per-dish Jones matrices of the same channels.
        ant1, ant2: (n_bl,) int dish indices p and q of each baseline.
    """
    if vis.shape[2] != 4 or jones.shape[1] != vis.shape[1]:
        raise ValueError(f"vis {vis.shape} and jones {jones.shape} do not match (4 correlations, same channels)")
    _apply(vis, np.ascontiguousarray(jones, dtype=np.complex128), np.ascontiguousarray(ant1, dtype=np.int64),
           np.ascontiguousarray(ant2, dtype=np.int64))
