"""EXECUTOR=dask on a real Dask cluster started here on loopback (`dask scheduler` and two `dask worker`
processes) and on a LocalCluster of one worker: the MS is the same bytes as the local executor's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from block_runs import assert_identical, environment, fresh_dirs, run, staged_columns
from conftest import SRC, stop_processes

DASK = Path(sys.executable).with_name("dask")


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """A scheduler and two single-threaded workers, as separate processes on 127.0.0.1; yields the address."""
    assert DASK.exists() or shutil.which("dask"), "the dask command is missing: pip install 'dask[distributed]'"
    command = str(DASK) if DASK.exists() else shutil.which("dask")
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    logs = open(tmp_path / "dask.log", "w")
    processes = [subprocess.Popen([command, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], env=env, stdout=logs, stderr=logs)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline and processes[0].poll() is None, (tmp_path / "dask.log").read_text()
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for n in range(2):
            processes.append(subprocess.Popen([command, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                               "--no-dashboard", "--name", f"w{n}", "--local-directory",
                                               str(tmp_path / f"w{n}")], env=env, stdout=logs, stderr=logs))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        stop_processes(processes)
        logs.close()


def test_dask_cluster_and_local_cluster_write_the_local_executors_ms(tmp_path: Path, dask_cluster: str):
    settings = {"local": {"WORKER_THREADS": "1"},
                "dask, 2 workers": {"EXECUTOR": "dask", "DASK_SCHEDULER_ADDRESS": dask_cluster, "WORKER_THREADS": "1"},
                "dask LocalCluster, 1 worker": {"EXECUTOR": "dask", "DASK_WORKERS": "1", "WORKER_THREADS": "2"}}
    columns = {}
    for name, values in settings.items():
        out, tmp = fresh_dirs(tmp_path, name.replace(" ", "_").replace(",", ""))
        result = run(["--vis"], environment(out, tmp, MEMORY_LIMIT="400MiB", **values))
        assert result.returncode == 0, result.stderr
        if name != "local":
            assert "srcnet-sim INFO dask: scheduler tcp://" in result.stderr and "dashboard" in result.stderr
            assert sorted(p.name for p in tmp.iterdir()) == []  # the LocalCluster's files removed too
        columns[name] = staged_columns(out, tmp_path / f"ms-{len(columns)}")
    for name in settings:
        assert_identical(columns["local"], columns[name])
