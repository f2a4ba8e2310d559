"""Gridding and degridding with ducc0's wgridder (w-stacking), in the FITS pixel orientation.

Images are (npix, npix) float32 arrays indexed [y, x] as a FITS file stores them: x increases
towards lower RA (east to the left when displayed), y towards higher Dec, the phase centre at
pixel (npix/2, npix/2) 0-based (CRPIX = npix/2 + 1). ducc0 returns [x, y] with y flipped for
CASA's UVW convention, hence flip_v and the transposes here.
"""

from __future__ import annotations

import os

import numpy as np
from ducc0.wgridder.experimental import dirty2vis, vis2dirty

DEFAULT_EPSILON = 1e-5


def core_count() -> int:
    """The cores this process may use (its CPU affinity): the gridder's default threads."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def grid(uvw_m: np.ndarray, freq_hz: np.ndarray, vis: np.ndarray, weight: np.ndarray, npix: int, cell_rad: float,
         epsilon: float = DEFAULT_EPSILON, threads: int | None = None) -> np.ndarray:
    """(npix, npix) image sum_i w_i Re(V_i exp(-2 pi i (u l + v m + w (n - 1)))), not normalised.

    A point source of flux S seen through weights w gives S * sum(w) at its pixel. threads: ducc0's threads
    (default: every core this process may use).
    """
    image = vis2dirty(uvw=uvw_m, freq=freq_hz, vis=vis, wgt=weight, npix_x=npix, npix_y=npix, pixsize_x=cell_rad,
                      pixsize_y=cell_rad, epsilon=epsilon, do_wgridding=True, nthreads=threads or core_count(), flip_v=True,
                      divide_by_n=False)
    return np.ascontiguousarray(image.T)


def degrid(uvw_m: np.ndarray, freq_hz: np.ndarray, model: np.ndarray, cell_rad: float,
           epsilon: float = DEFAULT_EPSILON, used: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """(n_row, n_chan) complex64 visibilities of a model image of point fluxes (Jy per pixel).

    used: (n_row, n_chan) bool; samples where it is False are not computed (left 0) -- the
    samples with zero imaging weight, often the longest baselines and the largest w. threads: as in grid.
    """
    mask = None if used is None else np.ascontiguousarray(used, dtype=np.uint8)
    return dirty2vis(uvw=uvw_m, freq=freq_hz, dirty=np.ascontiguousarray(model.T, dtype=np.float32), pixsize_x=cell_rad,
                     pixsize_y=cell_rad, epsilon=epsilon, do_wgridding=True, nthreads=threads or core_count(),
                     flip_v=True, divide_by_n=False, mask=mask)
