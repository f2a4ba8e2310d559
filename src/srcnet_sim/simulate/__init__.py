"""Observation geometry, beams, visibility prediction and noise."""

import os

import numba

# numba's workqueue threads sleep when idle, unlike OpenMP's, so they do not compete with
# OpenBLAS between the predictor's BLAS calls (2-3x faster here). A user's setting wins.
# It does not support launching kernels from several Python threads at once: run Dask workers
# as processes with one thread each.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
