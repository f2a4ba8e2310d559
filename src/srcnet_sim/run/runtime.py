"""Process-wide settings of the command line: thread layers and client modes, set explicitly by the entry point.

Importing srcnet_sim changes nothing process-wide; `configure_process()` is called by `srcnet_sim.cli.main`
(and so by the `srcnet-sim` console script and `python -m srcnet_sim.workflows.aastar`) before numpy or numba
are imported. A library user who wants the same behaviour calls it first, before importing numpy.
This module imports nothing numerical (llvmlite's binding only, to read the CPU's features).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

PROCESS_ENVIRONMENT = {
    # The predictor alternates OpenBLAS calls with numba parallel loops. Idle OpenBLAS threads spin for a long
    # time by default and take the cores from numba's threads; a short spin avoids that. OpenBLAS reads it
    # once, when it is loaded (with numpy): it must be in the environment before numpy is imported.
    "OPENBLAS_THREAD_TIMEOUT": "4",
    # numba's workqueue threads sleep when idle, unlike OpenMP's, so they do not compete with OpenBLAS between
    # the predictor's BLAS calls (2-3x faster here). It does not support launching kernels from several Python
    # threads at once: run Dask workers as processes with one thread each (they inherit the environment).
    "NUMBA_THREADING_LAYER": "workqueue",
    # The Rucio client reads its settings as a client, never a server's (database) configuration.
    "RUCIO_CLIENT_MODE": "1",
}


def configure_process() -> dict[str, str]:
    """Set PROCESS_ENVIRONMENT (and, on an AVX-512 CPU, NUMBA_CPU_FEATURES: full_width_vector_features) in
    os.environ where the user has not set a value; returns the values in force.

    If numba is already imported (it read its environment then), its threading layer and CPU features are set
    directly too (numba reads the features when it first compiles or loads a cached kernel).
    """
    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    features = None if "NUMBA_CPU_FEATURES" in os.environ else full_width_vector_features()
    if features is not None:
        os.environ["NUMBA_CPU_FEATURES"] = features
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]
        numba.config.CPU_FEATURES = os.environ.get("NUMBA_CPU_FEATURES", numba.config.CPU_FEATURES)
    names = [*PROCESS_ENVIRONMENT, *(["NUMBA_CPU_FEATURES"] if "NUMBA_CPU_FEATURES" in os.environ else [])]
    return {name: os.environ[name] for name in names}


def full_width_vector_features() -> str | None:
    """The host CPU's features for LLVM with 512-bit vectors preferred, where the CPU has AVX-512 (else None).

    LLVM tunes Intel's AVX-512 cores (Skylake-SP to Sapphire Rapids, and the client parts) to prefer 256-bit
    vectors, a choice made for Skylake's clock drop under 512-bit code; numba inherits it, so a kernel uses half of
    the core's FMA width (measured here, Intel Xeon with 2 FMA units: 119 vs 228 GFLOP/s single precision,
    benchmarks/fma_peak.py). The features are numba's own (the host's) plus "-prefer-256-bit". Every process of a
    run uses the same (Dask workers call configure_process too): the vector width sets the order of the kernels'
    lane sums, and so their last bits.
    """
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    if not features.get("avx512f", False):
        return None
    return features.flatten() + ",-prefer-256-bit"


@contextmanager
def importing() -> Iterator[None]:
    """Import the modules of a command without the cyclic garbage collector, then freeze what exists (gc.freeze).

    The libraries' objects (numba's, scipy's, pydantic's: over 200,000) live as long as the process; collecting
    while they are created, and every later full collection (the process's exit included), would search them all
    for cycles in vain: about 0.2 s of a run. Collection resumes afterwards as before for everything made later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
