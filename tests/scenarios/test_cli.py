"""The command line and the seed's entry point: products, estimate, bounded memory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from casacore.tables import table

from conftest import run_cli, unpack_ms
from peak_memory import run_measured

SMALL = {"SYNTHETIC_SOURCES": "200", "NUM_TIME_STAMPS": "2", "TELESCOPE": "SKA-MID-AA2"}


def test_run_vis_writes_the_seed_product_name(out_dir: Path):
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out_dir), "FILE_PREFIX": "obs1_", **SMALL})
    assert result.returncode == 0, result.stderr
    staged = out_dir / "testing" / "obs1_measurements.ms.tar"
    with table(str(unpack_ms(staged, out_dir / "unpacked")), ack=False) as main:
        assert main.nrows() == 2 * 64 * 63 // 2
    # The MS is staged as a tar with its sidecar; nothing partial is left.
    assert sorted(p.name for p in (out_dir / "testing").iterdir()) == ["obs1_measurements.ms.tar", "obs1_measurements.ms.tar.meta"]
    # One log line per step with a UTC timestamp.
    assert any(line.endswith(f"staged {staged} and obs1_measurements.ms.tar.meta") and line[:20].endswith("Z")
               for line in result.stderr.splitlines())


def test_default_out_dir_is_made_in_the_working_directory(tmp_path: Path):
    """The README's first command sets no OUT_DIR: ./srcnet-products/<namespace> is made where it runs."""
    result = run_cli(["run", "--vis"], env=SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    staged = tmp_path / "srcnet-products" / "testing"
    assert sorted(p.name for p in staged.iterdir()) == ["measurements.ms.tar", "measurements.ms.tar.meta"]


def test_cli_options_override_environment(out_dir: Path):
    result = run_cli(["run", "--vis", "--num-time-stamps", "1", "--file-prefix", "cli_"],
                     env={"OUT_DIR": str(out_dir), **SMALL})
    assert result.returncode == 0, result.stderr
    with table(str(unpack_ms(out_dir / "testing" / "cli_measurements.ms.tar", out_dir / "unpacked")), ack=False) as main:
        assert len(set(main.getcol("TIME"))) == 1


def test_seed_entry_point(out_dir: Path):
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}, "OUT_DIR": str(out_dir), **SMALL}
    result = subprocess.run([sys.executable, "-m", "srcnet_sim.workflows.aastar", "--visibilities"], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (out_dir / "testing" / "measurements.ms.tar.meta").is_file()


def test_no_product_chosen_is_an_error(out_dir: Path):
    result = run_cli(["run"], env={"OUT_DIR": str(out_dir), **SMALL})
    assert result.returncode == 2 and "srcnet-sim: error: --vis:" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_existing_product_is_not_overwritten(out_dir: Path):
    env = {"OUT_DIR": str(out_dir), **SMALL}
    assert run_cli(["run", "--vis"], env=env).returncode == 0
    again = run_cli(["run", "--vis"], env=env)
    assert again.returncode == 2 and "is staged already" in again.stderr
    assert run_cli(["run", "--vis", "--overwrite"], env=env).returncode == 0


def test_bad_names_are_refused_before_work(out_dir: Path):
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out_dir), "FILE_PREFIX": "../escape", **SMALL})
    assert result.returncode == 2 and "FILE_PREFIX:" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_run_refuses_when_out_dir_cannot_hold_the_product(out_dir: Path):
    """AA4 for two million time steps needs terabytes: refused before simulating, with the numbers."""
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out_dir), "TELESCOPE": "SKA-MID-AA4",
                                           "NUM_TIME_STAMPS": "2000000", "SYNTHETIC_SOURCES": "10"})
    assert result.returncode == 2, result.stderr
    assert re.search(r"OUT_DIR: .* has [\d.]+ [KMGT]iB free but measurements.ms.tar need about [\d.]+ TiB", result.stderr)
    assert list(out_dir.iterdir()) == []


def test_estimate_follows_the_seed_sizing_rule(out_dir: Path):
    result = run_cli(["estimate"], env={"OUT_DIR": str(out_dir)})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    # Seed defaults: 4 channels x 24 steps x 10296 baselines x 4 correlations x 8 bytes.
    assert "measurements            3953664" in text
    assert "MS minimum size         30.2 MiB" in text
    # The seed's image rule for this workflow: npixel^2 x num_channels x 8 bytes, num_channels = 1 (one MFS image).
    assert "image minimum size      31.3 MiB" in text  # 2024^2 x 1 x 8 bytes = 32774208 bytes
    assert "staged in OUT_DIR" in text and "measurements.ms.tar (" in text
    for word in ("peak memory", "free in OUT_DIR", "free in temporary dir", "made in temporary dir"):
        assert word in text


def test_image_minimum_size_does_not_grow_with_channels(out_dir: Path):
    """64 channels instead of 4: the MS grows 16-fold, the MFS image minimum stays npixel^2 x 8 bytes."""
    result = run_cli(["estimate"], env={"OUT_DIR": str(out_dir), "FREQ_INC_HZ": "1e6", "END_FREQ_HZ": "1.368e9",
                                        "IMAGING_NPIXEL": "1024"})
    assert result.returncode == 0, result.stderr
    assert "channels                64" in result.stdout
    assert "image minimum size      8.0 MiB" in result.stdout  # 1024^2 x 8 bytes


def test_expected_size_is_close_to_the_written_size(out_dir: Path):
    from srcnet_sim.config import load_settings
    from srcnet_sim.run.plan import plan

    env = {"OUT_DIR": str(out_dir), **SMALL, "NUM_TIME_STAMPS": "6"}
    assert run_cli(["run", "--vis"], env=env).returncode == 0
    written = (out_dir / "testing" / "measurements.ms.tar").stat().st_size
    expected = plan(load_settings(environ=env)).estimate.ms_expected_bytes
    assert written <= expected < 1.5 * written  # never less: preflight asks for it (a few MB: fixed parts dominate)


def peak_rss_bytes(args: list[str], env: dict[str, str]) -> int:
    """Run the CLI in a child process and return its own peak resident memory (not this process's)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "OPENBLAS_CORETYPE")}
    result = run_measured([sys.executable, "-m", "srcnet_sim.cli", *args], env={**base, **env})
    assert result.returncode == 0, result.stderr
    return result.peak_bytes


def test_memory_does_not_grow_with_observation_length(tmp_path: Path):
    """Ten times more time steps must not need ten times the memory (time-chunked writing)."""
    rss = {}
    for steps in (3, 30):
        out = tmp_path / f"o{steps}"
        out.mkdir()
        # 64 channels: one step of visibilities is 21 MB, all 30 would be 630 MB if they were held.
        rss[steps] = peak_rss_bytes(["run", "--vis"], {"OUT_DIR": str(out), "SYNTHETIC_SOURCES": "200",
                                                        "FREQ_INC_HZ": "1e6", "END_FREQ_HZ": "1.368e9",
                                                        "NUM_TIME_STAMPS": str(steps)})
    # Held in memory, the 27 extra steps would add ~570 MB (more than the whole 3-step run). Blocks grow with the run up
    # to their cap (128 MiB of visibilities, at least 8 blocks a run; blocks.py), so the peak grows a little, then stops.
    assert rss[30] < 1.5 * rss[3], rss
