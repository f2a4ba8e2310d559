"""Blocks: the run as (time range x channel range) pieces sized to MEMORY_LIMIT; the same MS whatever the block
shape and the threads; memory bounded when the channels grow ten times; a budget too small for one block is
one line before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from block_runs import SMALL, assert_identical, environment, fresh_dirs, run, staged_columns
from peak_memory import run_measured


def test_block_results_do_not_depend_on_the_block_shape():
    """compute_block on one block of everything equals the same samples cut into 2 x 3 blocks, bit for bit
    (noise seeded per time step and channel, one thread per baseline, fixed source order), and the threads."""
    from srcnet_sim.run.blocks import Block, compute_block
    from srcnet_sim.config import Settings
    from srcnet_sim.run.plan import plan

    settings = Settings(**{k.lower(): v for k, v in SMALL.items()}, smearing="bandwidth+time")
    obs = plan(settings).observation.with_geometry()
    n_t, n_c = len(obs.times_s), len(obs.freq_hz)
    whole = compute_block(obs, Block(0, 0, n_t, 0, n_c), threads=2)
    assert np.count_nonzero(whole.vis) == whole.vis.size
    for t0, t1 in ((0, 5), (5, n_t)):
        for c0, c1 in ((0, 3), (3, 11), (11, n_c)):
            part = compute_block(obs, Block(0, t0, t1, c0, c1), threads=1)
            assert part.vis.tobytes() == np.ascontiguousarray(whole.vis[t0:t1, :, c0:c1]).tobytes()
            assert part.uvw_m.tobytes() == whole.uvw_m[t0:t1].tobytes()


def test_turning_meerkat_beams_do_not_depend_on_the_block_shape():
    """BEAM=everybeam on AA* (MeerKAT's H and V patterns at each step's parallactic angle): one block of everything
    equals 2 x 2 blocks bit for bit, and the observation whose geometry was computed for another beam model gets its
    parallactic angles when it is simulated (the same bytes)."""
    import dataclasses

    from srcnet_sim.config import Settings
    from srcnet_sim.run.blocks import Block, compute_block
    from srcnet_sim.run.plan import plan

    settings = Settings(telescope="SKA-MID-AAstar", beam="everybeam", num_time_stamps=4, synthetic_sources=40,
                        freq_inc_hz=17.75e6, end_freq_hz=1.304e9 + 4 * 17.75e6, noise="on")
    obs = plan(settings).observation.with_geometry()
    assert obs.rotating_beams and obs.parallactic_rad is not None and np.ptp(obs.parallactic_rad) > 0.05
    n_t, n_c = len(obs.times_s), len(obs.freq_hz)
    whole = compute_block(obs, Block(0, 0, n_t, 0, n_c), threads=2)
    xx, yy = whole.vis[..., 0], whole.vis[..., 3]
    assert np.abs(xx - yy).max() > 1e-3 * np.abs(xx).max()  # H and V differ
    for t0, t1 in ((0, 1), (1, n_t)):
        for c0, c1 in ((0, 3), (3, n_c)):
            part = compute_block(obs, Block(0, t0, t1, c0, c1), threads=1)
            assert part.vis.tobytes() == np.ascontiguousarray(whole.vis[t0:t1, :, c0:c1]).tobytes()
    gaussian_geometry = dataclasses.replace(obs, beam="gaussian").with_geometry()
    again = compute_block(dataclasses.replace(gaussian_geometry, beam="everybeam"), Block(0, 0, n_t, 0, n_c), threads=2)
    assert again.vis.tobytes() == whole.vis.tobytes()


def test_block_shape_fits_the_budget_and_the_large_case_fits_8_gib():
    from srcnet_sim.run.blocks import make_blocks
    from srcnet_sim.sizing import block_shape, worker_peak_bytes

    # 1,440 dumps x 1,023 channels, AA* (144 dishes, 10,296 baselines), 10k sources, 8 GiB per worker.
    shape = block_shape(1440, 1023, 144, 10_000, 10_296, 8 * 2**30)
    assert shape.worker_peak_bytes <= 8 * 2**30
    assert shape.worker_peak_bytes == worker_peak_bytes(shape.n_times, shape.n_channels, 144, 10_000, 10_296)
    # Every Dask worker gets blocks: at least two per worker where the time steps allow.
    assert block_shape(96, 4, 144, 10_000, 10_296, 8 * 2**30).n_times == 12
    assert block_shape(96, 4, 144, 10_000, 10_296, 8 * 2**30, workers=16).n_times == 3
    # A smaller budget splits the channels into equal ranges that fit.
    small = block_shape(1440, 1023, 144, 10_000, 10_296, 2**30)
    assert small.n_channels < 1023 and small.worker_peak_bytes <= 2**30
    assert small.worker_peak_bytes == worker_peak_bytes(small.n_times, small.n_channels, 144, 10_000, 10_296)
    blocks = make_blocks(1440, 1023, shape)
    covered = np.zeros((1440, 1023), dtype=int)
    for block in blocks:
        covered[block.time_start:block.time_stop, block.chan_start:block.chan_stop] += 1
    assert (covered == 1).all()
    assert [b.index for b in blocks] == list(range(len(blocks)))
    assert all((a.time_start, a.chan_start) < (b.time_start, b.chan_start) for a, b in zip(blocks, blocks[1:]))


def test_estimate_reports_blocks_and_a_too_small_budget_is_one_line_before_any_work(tmp_path: Path):
    out, tmp = fresh_dirs(tmp_path, "estimate")
    env = environment(out, tmp, TELESCOPE="SKA-MID-AAstar", NUM_TIME_STAMPS="1440", FREQ_INC_HZ="69403.7",
                      SYNTHETIC_SOURCES="10000", MEMORY_LIMIT="1GiB", MODEL_DATA="off")
    estimate = subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "estimate"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert estimate.returncode == 0, estimate.stderr
    lines = dict(line.split(None, 1) if False else (line[:24].strip(), line[24:]) for line in estimate.stdout.splitlines())
    assert lines["channels"] == "1023" and lines["time steps"] == "1440"
    assert "x 128 channels (sized to MEMORY_LIMIT 1.0 GiB per worker)" in lines["blocks"]
    assert lines["peak memory per worker"].endswith("(simulation, process included)")
    small = run(["--vis"], environment(out, tmp, MEMORY_LIMIT="50MiB"))
    assert small.returncode == 2
    assert small.stderr.strip().splitlines() == [
        small.stderr.strip().splitlines()[-1]] or "Traceback" not in small.stderr
    last = small.stderr.strip().splitlines()[-1]
    assert last.startswith("srcnet-sim: error: MEMORY_LIMIT: 50.0 MiB is too small for one time step of one channel")
    assert list(tmp.iterdir()) == [] and list(out.iterdir()) == []


def test_same_ms_for_one_thread_all_cores_and_any_block_shape(tmp_path: Path):
    runs = {"1 thread": {"WORKER_THREADS": "1"}, "all cores": {},
            "small blocks": {"MEMORY_LIMIT": "360MiB", "WORKER_THREADS": "2"}}
    columns = {}
    for name, settings in runs.items():
        out, tmp = fresh_dirs(tmp_path, name.replace(" ", "-"))
        result = run(["--vis"], environment(out, tmp, **settings))
        assert result.returncode == 0, result.stderr
        columns[name] = staged_columns(out, tmp_path / f"{name}-ms".replace(" ", "-"))
    assert "small blocks" in runs
    for name in runs:
        assert_identical(columns["1 thread"], columns[name])


def _peak_rss(tmp_path: Path, name: str, **settings: str) -> tuple[int, str]:
    out, tmp = fresh_dirs(tmp_path, name)
    result = run_measured([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], environment(out, tmp, **settings),
                          timeout_s=300)
    assert result.returncode == 0, result.stderr
    return result.peak_bytes, result.stderr


def test_peak_memory_stays_under_the_budget_with_ten_times_the_channels(tmp_path: Path):
    """AA2 (2,016 baselines), 2 dumps: one dump of 640 channels is ~370 MB of sums at once; with MEMORY_LIMIT
    the run is cut into channel blocks and its peak resident memory stays under the budget."""
    budget = 700 * 2**20
    common = {"TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "2", "SYNTHETIC_SOURCES": "20", "NOISE": "off",
              "MEMORY_LIMIT": str(budget)}
    peak_64, _ = _peak_rss(tmp_path, "c64", FREQ_INC_HZ="1109375", **common)  # 64 channels
    peak_640, log = _peak_rss(tmp_path, "c640", FREQ_INC_HZ="110937.5", **common)  # 640 channels
    assert "x 640 channels (a worker needs" not in log and "x 320 channels (a worker needs" in log  # channel blocks
    print(f"peak RSS: 64 channels {peak_64 / 2**20:.0f} MiB, 640 channels {peak_640 / 2**20:.0f} MiB")
    assert peak_640 <= budget, f"peak {peak_640 / 2**20:.0f} MiB over the {budget / 2**20:.0f} MiB budget"
    assert peak_64 <= budget


def test_model_data_is_counted_in_the_ms_size_and_the_blocks():
    """MODEL_DATA=on writes a second complex64 column as large as DATA and holds it in every block's result."""
    from srcnet_sim.sizing import TILE_PADDING_BYTES, estimate, result_bytes

    args = (4, 240, 144, False, 10_000, 2048, False, 8 * 2**30)
    without, with_model = estimate(*args), estimate(*args, model_data=True)
    data_bytes = without.measurements * 8
    padding = TILE_PADDING_BYTES * -(-4 // with_model.block_channels)  # MODEL_DATA's last tile per channel block
    assert with_model.ms_expected_bytes - without.ms_expected_bytes == data_bytes + padding
    assert result_bytes(3, 4, 10_296, model_data=True) - result_bytes(3, 4, 10_296) == 3 * 10_296 * 4 * 4 * 8
    assert with_model.simulate_peak_bytes > without.simulate_peak_bytes
