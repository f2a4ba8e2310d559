"""scripts/compare_products.py, the check that a change of shape leaves the products' bytes alone: it reports a
changed pixel, a changed header card, a changed sidecar value and a changed tar member, and ignores only the
times of writing and PyBDSF's temporary path."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from astropy.io import fits

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_products.py"


def _write_tree(root: Path, pixel: float = 1.0, date: str = "2026-01-01", source: str = "/tmp/srcnet-sim-pybdsf-ab12",
                obs_id: str = "run-1", member: bytes = b"abc") -> Path:
    root.mkdir()
    header = fits.Header({"DATE": date, "OBJECT": "field"})
    data = np.zeros((4, 4), dtype=np.float32)
    data[1, 2] = pixel
    fits.PrimaryHDU(data, header).writeto(root / "x-dirty.fits")
    (root / "x-dirty.fits.meta").write_text(json.dumps({"name": "x-dirty.fits", "meta": {"obs_id": obs_id,
                                                                                         "obs_creation_date": date}}))
    qa = root / "qa"
    qa.mkdir()
    fits.PrimaryHDU(data, fits.Header({"INIMAGE": f"{source}/cleaned.fits"})).writeto(qa / "qa-detections.fits")
    (qa / "qa.json").write_bytes(member)
    with tarfile.open(root / "x-qa.tar", "w") as archive:
        archive.add(qa, arcname="qa")
    for path in qa.iterdir():
        path.unlink()
    qa.rmdir()
    return root


def _compare(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True, timeout=120)


def test_times_of_writing_and_pybdsf_paths_aside_the_trees_are_identical(tmp_path: Path):
    before = _write_tree(tmp_path / "a")
    after = _write_tree(tmp_path / "b", date="2026-12-05", source="/scratch/srcnet-sim-pybdsf-zz99")
    result = _compare(before, after)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout


def test_a_pixel_a_sidecar_value_and_a_tar_member_are_each_reported(tmp_path: Path):
    before = _write_tree(tmp_path / "a")
    cases = {"pixel": ({"pixel": 1.0 + 2**-20}, ["x-dirty.fits[0]: data differs",
                                                  "x-qa.tar:qa/qa-detections.fits[0]: data differs"]),
             "sidecar": ({"obs_id": "run-2"}, ["x-dirty.fits.meta: JSON differs"]),
             "member": ({"member": b"abd"}, ["x-qa.tar:qa/qa.json: bytes differ"])}
    for case, (changed, lines) in cases.items():
        result = _compare(before, _write_tree(tmp_path / case, **changed))
        assert result.returncode == 1, (case, result.stdout)
        assert result.stdout.splitlines()[:-1] == lines, (case, result.stdout)
