"""The GPU strategy of the predictor: `predict.predict_time_step`'s results for a block of time steps.

Same terms and conventions as the CPU predictor (see predict.py): per-dish phasors
Z[k, s, p] = E_p(s) exp(+2 pi i f_k tau_p(s)) evaluated on the device; for point sources without
smearing V = Z^T diag(X) conj(Z) by batched complex matrix products (cuBLAS gemm through `xp.matmul`);
everything baseline-dependent (bandwidth and time smearing, Gaussian envelopes) in the CUDA kernel
of `gpu_kernel`. Phases are reduced in turns in float64 before sin/cos, then stored in the
requested precision, as the CPU does.

Beams that differ between H and V and turn with the parallactic angle (`SourceTerms.jones`) are evaluated per time
step of the block, and a Stokes I sky is predicted twice, once through the H patterns (XX) and once through the V
patterns (YY): XX = sum I E_H,p E_H,q exp(...), YY = sum I E_V,p E_V,q exp(...). A polarised sky with such beams needs
the mixed products E_H,p E_V,q, which these kernels do not form: it is refused (the CPU predictor has them).

The array code is written against `xp`: CuPy on a device, NumPy in CI, where numba's CUDA simulator
runs the kernel on NumPy arrays. Sources (and, for many channels, channels) are processed in chunks
sized to the device memory left free, so memory stays bounded whatever the sky size.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from types import ModuleType

import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.instrument.beams import SPEED_OF_LIGHT_M_S
from srcnet_sim.simulate.gpu_kernel import TILE, grouped_kernel, grouped_shape, grouped_tile
from srcnet_sim.simulate.predict import POLARISED_SKY_WITH_TURNING_BEAMS, SourceTerms
from srcnet_sim.sizing import gpu_block_device_bytes

ROWS_PER_GROUP = 8  # dish rows p whose sums one thread of the grouped kernel keeps in registers
CHANNELS_PER_BLOCK = 4  # channels whose sums one kernel thread keeps in registers
# Sums [rows, channels, Stokes] one thread of the grouped kernel keeps (complex; x2 registers, x4 in double):
# rows and channels are lowered to fit (4 Stokes: 8 rows x 1 channel in single precision, 4 x 1 in double).
SUMS_PER_THREAD = {False: 32, True: 16}
SOURCES_PER_TILE = TILE  # sources whose row values a block holds in shared memory at a time
# Blocks per multiprocessor the source dimension is split to reach: several waves of equal blocks, so that
# the last, partly filled wave costs little (slices meet in atomic adds, a few per thread).
BLOCKS_PER_SM = 32
MIN_SOURCE_CHUNK = 1024
DEFAULT_MEMORY_BYTES = 1 << 30  # without a device (NumPy in CI): the working-set budget


def stokes_to_linear_xp(xp: ModuleType, sums):
    """(..., 4) Stokes sums [I, Q, U, V] -> linear correlations [XX, XY, YX, YY] (as predict._linear_correlations)."""
    i, q, u, v = (sums[..., x] for x in range(4))
    return xp.stack([i + q, u + 1j * v, u - 1j * v, i - q], axis=-1)


class GpuPredictor:
    """Predicts blocks of time steps on one CUDA device (or, with xp=numpy, on the CUDA simulator).

    Args:
        xp: cupy, or numpy for tests without a device.
        memory_bytes: device memory to use at most; default: half of what the device has free.
        min_source_chunk: fewest sources per chunk (tests lower it to exercise the chunking).

    Set `timings` to a dict to have the seconds of each stage added to it (benchmarks/bench_gpu.py): the device
    is then synchronised around every stage, which costs the overlap of host and device work.
    """

    def __init__(self, xp: ModuleType, memory_bytes: int | None = None, min_source_chunk: int = MIN_SOURCE_CHUNK):
        self.xp = xp
        self.memory_bytes = memory_bytes
        self.min_source_chunk = min_source_chunk
        self._terms: SourceTerms | None = None
        self._terms_dev: dict = {}
        self.timings: dict[str, float] | None = None
        self.n_sm = 132
        if xp.__name__ == "cupy":
            device = xp.cuda.Device()
            self.n_sm = int(device.attributes["MultiProcessorCount"])

    @contextmanager
    def _stage(self, name: str):
        """Adds the seconds of the enclosed device work to self.timings[name] (when timing)."""
        if self.timings is None:
            yield
            return
        self._synchronize()
        start = time.perf_counter()
        yield
        self._synchronize()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _synchronize(self) -> None:
        if self.xp is not np:
            self.xp.cuda.Device().synchronize()

    def _budget(self) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        if self.xp.__name__ == "cupy":
            pool = self.xp.get_default_memory_pool()
            free, _ = self.xp.cuda.runtime.memGetInfo()
            return (free + pool.free_bytes()) // 2
        return DEFAULT_MEMORY_BYTES

    def _upload_terms(self, terms: SourceTerms, real_dtype: type) -> dict:
        """Per-source arrays on the device, kept while the same SourceTerms are predicted."""
        if self._terms is terms and self._terms_dev.get("real") == real_dtype:
            return self._terms_dev
        xp = self.xp
        self._terms = terms
        self._terms_dev = {
            "real": real_dtype,
            "lmn": xp.asarray(terms.lmn, dtype=np.float64),
            "stokes": xp.asarray(terms.stokes, dtype=real_dtype),
            "beams": xp.asarray(terms.beams, dtype=np.float64),
            "gaussian": xp.ascontiguousarray(xp.asarray(terms.gaussian.T, dtype=real_dtype)),
        }
        return self._terms_dev

    def predict(self, dish_uvw_m: np.ndarray, terms: SourceTerms, dish_type: np.ndarray, freq_hz: np.ndarray,
                ant1: np.ndarray, ant2: np.ndarray, channel_width_hz: float = 0.0,
                dish_uvw_rate_m_s: np.ndarray | None = None, interval_s: float = 0.0,
                dtype: type = np.complex64, to_host: bool = True, parallactic_rad: np.ndarray | None = None):
        """Visibilities of a block of time steps, (n_time, n_baseline, n_chan, 4) in `dtype`, Jy.

        Args as `predict.predict_time_step`, per step, except:
            dish_uvw_m: (n_time, n_dish, 3) per-dish UVW of each step, metres.
            dish_uvw_rate_m_s: (n_time, n_dish, 3) d(uvw)/dt of each dish, m/s; with interval_s > 0
                applies time smearing (the CPU's dish_delay_rate is this times lmn^T / c).
            to_host: return a NumPy array (else an `xp` array on the device).
            parallactic_rad: (n_time,) the steps' parallactic angles, with terms.jones.
        """
        if terms.jones is None:
            vis = self._predict(dish_uvw_m, terms, dish_type, freq_hz, ant1, ant2, channel_width_hz,
                                dish_uvw_rate_m_s, interval_s, dtype, None)
            return self.to_host(vis) if to_host else vis
        if np.any(terms.stokes[:, 1:, :]):
            raise UserInputError("BACKEND", POLARISED_SKY_WITH_TURNING_BEAMS)
        if parallactic_rad is None:
            raise ValueError("beams that turn on the sky (terms.jones) need the steps' parallactic angles")
        def beams_of(pol: int):
            def chunk(channels: slice, sources: slice):  # (n_time, n_type, n_chan, n_src) of one chunk
                return self.xp.asarray(np.stack([terms.jones.at(float(angle), channels, sources)[:, pol]
                                                 for angle in parallactic_rad]), dtype=np.float64)
            return chunk

        vis = self._predict(dish_uvw_m, terms, dish_type, freq_hz, ant1, ant2, channel_width_hz, dish_uvw_rate_m_s,
                            interval_s, dtype, beams_of(0))
        vis[..., 3] = self._predict(dish_uvw_m, terms, dish_type, freq_hz, ant1, ant2, channel_width_hz,
                                    dish_uvw_rate_m_s, interval_s, dtype, beams_of(1))[..., 3]
        return self.to_host(vis) if to_host else vis

    def _predict(self, dish_uvw_m: np.ndarray, terms: SourceTerms, dish_type: np.ndarray, freq_hz: np.ndarray,
                 ant1: np.ndarray, ant2: np.ndarray, channel_width_hz: float, dish_uvw_rate_m_s: np.ndarray | None,
                 interval_s: float, dtype: type, step_beams):
        """`predict`'s visibilities on the device, through terms.beams or, when given, step_beams(channels, sources):
        one polarisation's patterns at each step of a chunk, (n_time, n_type, n_chan, n_src) on the device."""
        xp = self.xp
        real_dtype = np.float32 if dtype == np.complex64 else np.float64
        with self._stage("upload"):
            dev = self._upload_terms(terms, real_dtype)
        n_time, n_dish = dish_uvw_m.shape[:2]
        n_chan, n_src = len(freq_hz), len(terms.lmn)
        n_stokes = 4 if np.any(terms.stokes[:, 1:, :]) else 1
        smear_time = dish_uvw_rate_m_s is not None and interval_s > 0
        smear = channel_width_hz > 0 or smear_time
        kernel_start = n_src if not smear and terms.n_point == n_src else (0 if smear else terms.n_point)

        uvw = xp.asarray(dish_uvw_m, dtype=np.float64)
        rate_uvw = xp.asarray(dish_uvw_rate_m_s, dtype=np.float64) if smear_time else None
        dish_type_dev = xp.asarray(dish_type, dtype=np.int64)
        freq = np.asarray(freq_hz, dtype=np.float64)
        per_c = xp.asarray(freq / SPEED_OF_LIGHT_M_S, dtype=real_dtype)
        half_interval_f = xp.asarray(0.5 * interval_s * freq, dtype=real_dtype)
        matrices = (xp.zeros((n_time, n_chan, n_stokes, n_dish, n_dish), dtype=dtype) if kernel_start > 0 else None)
        kernel_out = (xp.zeros((n_time, n_chan, n_stokes, 2, n_dish, n_dish), dtype=real_dtype)
                      if kernel_start < n_src else None)

        chan_chunk, src_chunk = self._chunks(n_time, n_dish, n_chan, n_src, len(ant1), dtype)
        for c0 in range(0, n_chan, chan_chunk):
            chans = slice(c0, min(c0 + chan_chunk, n_chan))
            chunk_out = (kernel_out if chan_chunk == n_chan or kernel_out is None
                         else xp.zeros_like(kernel_out[:, chans]))  # contiguous
            for s0 in range(0, n_src, src_chunk):
                s1 = min(s0 + src_chunk, n_src)
                with self._stage("phasors"):
                    z, path = self._phasors(uvw, dev, dish_type_dev, freq, chans, s0, s1, dtype, step_beams)
                point_end = min(max(kernel_start, s0), s1)  # sources [s0, point_end) go to the matrix products
                if point_end > s0:  # one batched gemm for all Stokes: (X_x Z)^T conj(Z), [x, p] stacked as rows
                    with self._stage("point-source gemm"):
                        points = z[:, :, :point_end - s0]
                        weighted = points[:, :, :, None, :] * dev["stokes"][chans, :n_stokes, s0:point_end].transpose(
                            0, 2, 1)[None, :, :, :, None].astype(dtype)  # (n_time, n_chan, n_src, n_stokes, n_dish)
                        weighted = weighted.reshape(n_time, -1, point_end - s0, n_stokes * n_dish)
                        product = xp.matmul(weighted.transpose(0, 1, 3, 2), points.conj())
                        matrices[:, chans] += product.reshape(n_time, -1, n_stokes, n_dish, n_dish)
                        del points, weighted, product
                if point_end < s1:
                    k = slice(point_end - s0, s1 - s0)
                    with self._stage("smearing terms"):
                        bw = (self._bandwidth_terms(path[:, k], channel_width_hz, dtype) if channel_width_hz > 0
                              else None)
                        rate = None
                        if smear_time:
                            rate = (xp.matmul(dev["lmn"][point_end:s1], rate_uvw.transpose(0, 2, 1))
                                    / SPEED_OF_LIGHT_M_S).astype(real_dtype)
                    with self._stage("per-baseline kernel"):
                        self._launch(xp.ascontiguousarray(z[:, :, k]),
                                     xp.ascontiguousarray(dev["stokes"][chans, :n_stokes, point_end:s1]),
                                     bw, rate, half_interval_f[chans], per_c[chans], uvw,
                                     xp.ascontiguousarray(dev["gaussian"][:, point_end:s1]),
                                     max(terms.n_point - point_end, 0), chunk_out, real_dtype)
                del z, path
            if chunk_out is not kernel_out:
                kernel_out[:, chans] += chunk_out
            del chunk_out

        with self._stage("baselines and correlations"):
            return self._assemble(matrices, kernel_out, ant1, ant2, n_stokes, dtype)

    def _assemble(self, matrices, kernel_out, ant1: np.ndarray, ant2: np.ndarray, n_stokes: int, dtype: type):
        """(n_time, n_baseline, n_chan, 4) correlations from the dish-pair sums of the gemm and the kernel."""
        xp = self.xp
        some = matrices if matrices is not None else kernel_out
        n_time, n_chan = some.shape[:2]
        a1, a2 = xp.asarray(ant1), xp.asarray(ant2)
        sums = xp.zeros((n_time, n_chan, n_stokes, len(ant1)), dtype=dtype)
        if matrices is not None:
            sums += matrices[..., a1, a2]
        if kernel_out is not None:
            sums += kernel_out[:, :, :, 0][..., a1, a2] + 1j * kernel_out[:, :, :, 1][..., a1, a2]
        sums = sums.transpose(0, 3, 1, 2)  # (n_time, n_baseline, n_chan, n_stokes)
        full = xp.zeros(sums.shape[:3] + (4,), dtype=dtype)
        full[..., :n_stokes] = sums
        auto = np.flatnonzero(np.asarray(ant1) == np.asarray(ant2))
        if len(auto):  # sum_s X_s |Z_p|^2 is real: drop round-off imaginary parts
            auto = xp.asarray(auto)
            full[:, auto] = full[:, auto].real.astype(full.dtype)
        return stokes_to_linear_xp(xp, full).astype(dtype)

    def to_host(self, array) -> np.ndarray:
        """A NumPy copy of a device array (waits for the device)."""
        with self._stage("device to host copy"):
            return np.asarray(array) if self.xp is np else self.xp.asnumpy(array)

    def _chunks(self, n_time: int, n_dish: int, n_chan: int, n_src: int, n_baseline: int, dtype: type) -> tuple[int, int]:
        """(channels, sources) per chunk so that one chunk's working set fits the memory budget."""
        budget = self._budget() - gpu_block_device_bytes(n_time, n_dish, n_chan, 0, n_baseline, dtype)
        chan_chunk = n_chan
        while chan_chunk > 1 and gpu_block_device_bytes(n_time, n_dish, chan_chunk, self.min_source_chunk, 0, dtype) > budget:
            chan_chunk = (chan_chunk + 1) // 2
        per_source = gpu_block_device_bytes(n_time, n_dish, chan_chunk, 1, 0, dtype) - gpu_block_device_bytes(
            n_time, n_dish, chan_chunk, 0, 0, dtype)
        src_chunk = max(self.min_source_chunk, int(budget // max(per_source, 1)))
        return chan_chunk, min(src_chunk, n_src)

    def _phasors(self, uvw, dev: dict, dish_type, freq_hz: np.ndarray, chans: slice, s0: int, s1: int,
                 dtype: type, step_beams=None):
        """Z (n_time, n_chan, n_src, n_dish) of `dtype` for channels `chans` and sources [s0, s1), and the
        path lengths (n_time, n_src, n_dish), m. The beams are dev["beams"] (n_type, n_chan, n_src), or
        step_beams(chans, sources) (n_time, n_type, n_chan, n_src) when given."""
        xp = self.xp
        path = xp.matmul(dev["lmn"][s0:s1], uvw.transpose(0, 2, 1))  # u l + v m + w (n - 1)
        channels = range(chans.start, chans.stop)
        z = xp.empty((uvw.shape[0], len(channels), s1 - s0, uvw.shape[1]), dtype=dtype)
        chunk_beams = None if step_beams is None else step_beams(chans, slice(s0, s1))
        for i, k in enumerate(channels):
            turns = path * (freq_hz[k] / SPEED_OF_LIGHT_M_S)
            angle = (2.0 * math.pi) * (turns - xp.rint(turns))  # exact reduction in turns, then radians
            if step_beams is None:
                beam = dev["beams"][:, k, s0:s1][dish_type].T  # (n_src, n_dish)
            else:
                beam = chunk_beams[:, :, i][:, dish_type].transpose(0, 2, 1)  # (n_time, n_src, n_dish)
            z[:, i] = beam * xp.exp(1j * angle)
        return z, path

    def _bandwidth_terms(self, path, channel_width_hz: float, dtype: type):
        """x = pi dnu tau (real) and exp(i x) (`dtype`), each (n_time, n_src, n_dish)."""
        xp = self.xp
        turns = path * (0.5 * channel_width_hz / SPEED_OF_LIGHT_M_S)  # x / (2 pi)
        angle = (2.0 * math.pi) * (turns - xp.rint(turns))
        real_dtype = np.float32 if dtype == np.complex64 else np.float64
        return (2.0 * math.pi * turns).astype(real_dtype), xp.exp(1j * angle).astype(dtype)

    def _launch(self, z, stokes, bw, rate, half_interval_f, per_c, uvw, gaussian, n_point: int, out,
                real_dtype: type) -> None:
        """Adds the per-baseline sums of these sources to `out` (n_time, n_chan, n_stokes, 2, n_dish, n_dish);
        sources [0, n_point) are points, the others Gaussians."""
        n_time, n_chan, n_src, n_dish = z.shape
        n_stokes = stokes.shape[1]
        double = real_dtype == np.float64
        dummy = self.xp.zeros(1, dtype=real_dtype)
        bwx, bwe = (a.ravel() for a in bw) if bw is not None else (dummy, dummy.astype(z.dtype))
        rate_flat = rate.ravel() if rate is not None else dummy
        rows, ch, tile = grouped_launch_shape(double, n_stokes, n_chan)
        args = self._device_args(z.ravel(), stokes, bwx, bwe, rate_flat, half_interval_f, per_c, uvw, gaussian)
        out_arg = self._device_arg(out)
        n_point = min(n_point, n_src)
        for first, last, is_gaussian in ((0, n_point, False), (n_point, n_src, True)):
            if last <= first:
                continue
            grid, threads = grouped_shape(n_dish, last - first, n_time, n_chan, rows, ch, last - first)
            splits = max(1, math.ceil(BLOCKS_PER_SM * self.n_sm / (grid[0] * grid[2])))
            src_per_block = tile * max(1, math.ceil((last - first) / splits / tile))
            grid, threads = grouped_shape(n_dish, last - first, n_time, n_chan, rows, ch, src_per_block)
            kernel = grouped_kernel(double, n_stokes, rows, ch, tile, bw is not None, rate is not None, is_gaussian)
            kernel[grid, threads](*args, first, last, src_per_block, n_chan, n_src, n_dish, out_arg)

    def _device_arg(self, array):
        """`array` for a numba.cuda launch: CuPy arrays are wrapped without numba's stream synchronisation
        (both use the default stream, so the launch is ordered after the work that made them)."""
        if not hasattr(array, "__cuda_array_interface__"):  # NumPy (the CUDA simulator, the CuPy stand-in)
            return array
        from numba import cuda

        return cuda.as_cuda_array(array, sync=False)

    def _device_args(self, *arrays) -> list:
        return [self._device_arg(a) for a in arrays]


def grouped_launch_shape(double: bool, n_stokes: int, n_chan: int) -> tuple[int, int, int]:
    """(rows per group, channels per block, sources per tile) of the grouped kernel for this workload: the
    module defaults, lowered so that the sums fit SUMS_PER_THREAD and the tile the shared memory."""
    budget = SUMS_PER_THREAD[double]
    rows = max(1, min(ROWS_PER_GROUP, budget // n_stokes))
    ch = max(1, min(CHANNELS_PER_BLOCK, n_chan, budget // (rows * n_stokes)))
    return rows, ch, grouped_tile(double, n_stokes, rows, ch, SOURCES_PER_TILE)
