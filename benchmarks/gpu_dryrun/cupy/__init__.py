"""A NumPy stand-in for CuPy, only for `benchmarks/gpu_dryrun.sh`: runs benchmarks/gpu_check.sh without a GPU.

GpuPredictor's array code runs on NumPy through it and numba's CUDA simulator runs the kernel, so the
check script's install, test and benchmark steps are exercised end to end; figures and matvis's GPU
path mean nothing here. Never on the path of a real run.
"""

import numpy as _np
from numpy import *  # noqa: F403 - the array API CuPy mirrors

__version__ = "numpy-stand-in"


def asnumpy(array):
    return _np.asarray(array)


def get_array_module(*arrays):
    return _np


class _Device:
    attributes = {"MultiProcessorCount": 2}

    def synchronize(self):
        pass


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(index):
        return {"name": b"NumPy stand-in (CUDA simulator)"}

    @staticmethod
    def memGetInfo():
        return (1 << 30, 2 << 30)


class cuda:  # noqa: N801 - CuPy's name
    Device = _Device
    runtime = _Runtime


class _Pool:
    def free_bytes(self):
        return 0


def get_default_memory_pool():
    return _Pool()
