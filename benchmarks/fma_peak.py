"""The measured single-precision FMA peak of one core: independent chains of fused multiply-adds on 256-bit and
512-bit vectors (GCC vector extensions, compiled here with -march=native), the best of several runs.

A chain is a register, `acc = acc * a + b`, each from its own start (equal chains would be merged); 12 chains hide the FMA latency (4 cycles on recent Intel and AMD cores)
behind the throughput of two FMA ports. Each FMA counts as 2 flops per lane. Needs gcc. The 512-bit figure is
measured only where the CPU has AVX-512 (/proc/cpuinfo's avx512f): without it gcc lowers 64-byte vectors
through memory (7 GFLOP/s on a Zen 3 core), a figure of the compiler, not of the core.

    python benchmarks/fma_peak.py
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import time
from pathlib import Path

SOURCE = r"""
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
#define CHAINS(T, NAME)                                                                  \
float NAME(long n) {                                                                     \
    T a = (T){} + 0.9999f, b = (T){} + 1e-4f;                                            \
    T c0 = b * 1.f, c1 = b * 2.f, c2 = b * 3.f, c3 = b * 4.f, c4 = b * 5.f, c5 = b * 6.f;                        \
    T c6 = b * 7.f, c7 = b * 8.f, c8 = b * 9.f, c9 = b * 10.f, c10 = b * 11.f, c11 = b * 12.f;                \
    for (long i = 0; i < n; i++) {                                                       \
        c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b;              \
        c4 = c4 * a + b; c5 = c5 * a + b; c6 = c6 * a + b; c7 = c7 * a + b;              \
        c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b;          \
    }                                                                                    \
    T s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;                   \
    float r = 0; for (int k = 0; k < (int)(sizeof(T) / 4); k++) r += s[k];               \
    return r;                                                                            \
}
CHAINS(v8, fma256)
CHAINS(v16, fma512)
"""
CHAINS = 12


def compile_library(directory: Path) -> ctypes.CDLL:
    """Build SOURCE into a shared library in `directory` (gcc -O2 -march=native -ffp-contract=fast)."""
    source, library = directory / "fma_peak.c", directory / "fma_peak.so"
    source.write_text(SOURCE)
    subprocess.run(["gcc", "-O2", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC", "-o", str(library),
                    str(source)], check=True)
    lib = ctypes.CDLL(str(library))
    for name in ("fma256", "fma512"):
        getattr(lib, name).restype = ctypes.c_float
        getattr(lib, name).argtypes = [ctypes.c_long]
    return lib


def has_avx512() -> bool:
    """Whether this CPU has AVX-512F (the flags of /proc/cpuinfo; False where it cannot be read)."""
    try:
        return " avx512f " in f" {Path('/proc/cpuinfo').read_text()} ".replace("\n", " ")
    except OSError:
        return False


def peak_gflops(seconds: float = 0.3, repeats: int = 5) -> dict[int, float]:
    """{vector bits: GFLOP/s of one core} for 256-bit FMAs and, on AVX-512 CPUs, 512-bit ones, float32, the best of
    `repeats` runs of about `seconds` each."""
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_library(Path(tmp))
        result = {}
        for bits, function in ((256, lib.fma256), (512, lib.fma512)):
            if bits == 512 and not has_avx512():
                continue
            lanes = bits // 32
            n = 1_000_000
            start = time.perf_counter()
            function(n)
            n = max(n, int(n * seconds / max(time.perf_counter() - start, 1e-6)))
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                function(n)
                best = min(best, time.perf_counter() - start)
            result[bits] = n * CHAINS * lanes * 2 / best / 1e9
    return result


if __name__ == "__main__":
    for bits, gflops in peak_gflops().items():
        print(f"{bits}-bit FMA peak, one core: {gflops:6.1f} GFLOP/s (float32)")
