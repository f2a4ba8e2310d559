"""srcnet-sim: mock SKA-Mid observations as SRCNet-ready data products."""

import os

# The predictor alternates OpenBLAS calls with numba parallel loops. Idle OpenBLAS threads spin
# for a long time by default and take the cores from numba's threads; a short spin avoids that.
# Effective only when numpy is imported after srcnet_sim (as in the CLI); a user's value wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
