"""Hostile and mistaken inputs: every one is refused before any compute, by the real CLI, with one line.

Each case runs `srcnet-sim run` (or `image`) in a fresh OUT_DIR and TMPDIR and expects exit 2, exactly one
non-log line on stderr, "srcnet-sim: error: <SETTING>: ...", no traceback, and both directories left empty.
The control cases pass the same harness with exit 0, so that the table cannot pass by refusing everything.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from casacore.tables import taql

from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim import resources, validation
from srcnet_sim.errors import UserInputError

TINY = {"SYNTHETIC_SOURCES": "10", "NUM_TIME_STAMPS": "2", "TELESCOPE": "SKA-MID-AA0.5", "IMAGING_NPIXEL": "64"}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ srcnet-sim (INFO|WARNING) ")


def _tm(directory: Path, position: str, layout: str) -> Path:
    directory.mkdir()
    (directory / "position.txt").write_text(position)
    (directory / "layout.txt").write_text(layout)
    return directory


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad input files, and a tiny MeasurementSet (good, all flagged) for `image`."""
    d = tmp_path_factory.mktemp("hostile")
    out = d / "ms-out"
    out.mkdir()
    made = run_cli(["run", "--vis"], env={"OUT_DIR": str(out), **TINY})
    assert made.returncode == 0, made.stderr
    ms = unpack_ms(out / "testing" / "measurements.ms.tar", d / "unpacked")
    flagged = d / "flagged.ms"
    shutil.copytree(ms, flagged)
    taql(f"UPDATE {flagged} SET FLAG=True")
    (d / "not-an-ms").mkdir()
    (d / "config-dir.toml").mkdir()
    (d / "inf.toml").write_text("END_FREQ_HZ = inf\n")
    mightee = Table({"RA": [150.12, 150.121], "DEC": [2.21, 2.211], "S_PEAK": [1e-3, np.nan], "NU_EFF": [1.28e9] * 2,
                     "IM_MAJ": [1.0, 1.0], "IM_MIN": [1.0, 1.0], "IM_PA": [0.0, 0.0]})
    for column, unit in (("RA", "deg"), ("DEC", "deg"), ("S_PEAK", "Jy/beam"), ("NU_EFF", "Hz"), ("IM_MAJ", "arcsec"),
                         ("IM_MIN", "arcsec"), ("IM_PA", "deg")):
        mightee[column].unit = unit
    mightee.write(d / "mightee-nan.fits")
    site = "21.443803 -30.712925 1050\n"
    return {
        "ms": ms, "flagged_ms": flagged, "not_ms": d / "not-an-ms", "mightee_nan": d / "mightee-nan.fits",
        "nan_flux": write_csv_sky(d / "nan-flux.csv", [(150.12, 2.21, 1.0), (150.121, 2.211, float("nan"))]),
        "inf_flux": _text(d / "inf-flux.osm", "150.12 2.21 1.0\n150.121 2.211 inf\n"),
        "nan_ra": write_csv_sky(d / "nan-ra.csv", [(float("nan"), 2.21, 1.0), (150.12, 2.21, 1.0)]),
        "nan_size": write_csv_sky(d / "nan-size.csv", [(150.12, 2.21, 1.0, float("nan"), 1.0)],
                                  header="ra_deg,dec_deg,i_jy,major_arcsec,minor_arcsec"),
        "steep": write_csv_sky(d / "steep.csv", [(150.12, 2.21, 1.0, 1e9, 1e6)],
                               header="ra_deg,dec_deg,i_jy,ref_freq_hz,spectral_index"),
        "config_dir": d / "config-dir.toml", "inf_toml": d / "inf.toml",
        "nan_layout": _tm(d / "nan-layout.tm", site, "0,0,0\n100,nan,0\n0,250,1\n"),
        "nan_site": _tm(d / "nan-site.tm", "nan -30.7 1050\n", "0,0,0\n100,0,0\n0,250,1\n"),
        "same_place": _tm(d / "same-place.tm", site, "0,0,0\n100,0,0\n100,0,0\n"),
        "off_earth": _tm(d / "off-earth.tm", site, "0,0,0\n100,0,0\n4e7,0,0\n"),
        "one_dish": _tm(d / "one-dish.tm", site, "0,0,0\n"),
    }


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _deep_dir(root: Path) -> Path:
    """A directory whose path leaves too little room below PATH_MAX (4096) for the staged products."""
    path = root
    while len(os.fsencode(path)) < 3950:
        path = path / ("d" * 200)
    path.mkdir(parents=True)
    return path


# (id, command, settings or options, expected setting; None: a control case that must succeed)
RUN = [
    ("control-run", ["--vis", "--dirty"], {}, None),
    ("empty-obs-collection", ["--vis"], {"OBS_COLLECTION": ""}, "OBS_COLLECTION"),
    ("long-file-prefix", ["--vis"], {"FILE_PREFIX": "p" * 200}, "FILE_PREFIX"),
    ("namespace-newline", ["--vis"], {"RUCIO_NAMESPACE": "testing\n"}, "RUCIO_NAMESPACE"),
    ("obs-id-newline", ["--vis"], {"OBS_ID": "obs1\n"}, "OBS_ID"),
    ("obs-collection-tab", ["--vis"], {"OBS_COLLECTION": "SKAO\tSKAMID"}, "OBS_COLLECTION"),
    ("ivoid-authority-empty", ["--vis"], {"IVOID_AUTHORITY": ""}, "IVOID_AUTHORITY"),
    ("end-freq-inf", ["--vis"], {"END_FREQ_HZ": "inf"}, "END_FREQ_HZ"),
    ("freq-inc-tiny", ["--vis"], {"FREQ_INC_HZ": "1e-300"}, "FREQ_INC_HZ"),
    ("end-freq-absurd", ["--vis"], {"END_FREQ_HZ": "1e300"}, "END_FREQ_HZ"),
    ("lifetime-beyond-dates", ["--vis"], {"RUCIO_LIFETIME": "99999999999999"}, "RUCIO_LIFETIME"),
    ("ra-nan", ["--vis"], {"PHASE_CENTER_RA_DEG": "nan"}, "PHASE_CENTER_RA_DEG"),
    ("obs-length-inf", ["--vis"], {"OBS_LENGTH_HOURS": "inf"}, "OBS_LENGTH_HOURS"),
    ("npixel-odd", ["--dirty"], {"IMAGING_NPIXEL": "257"}, "IMAGING_NPIXEL"),
    ("npixel-beyond-memory", ["--dirty"], {"IMAGING_NPIXEL": "200000"}, "IMAGING_NPIXEL"),
    ("cell-past-horizon", ["--dirty"], {"IMAGING_CELLSIZE": "0.05"}, "IMAGING_CELLSIZE"),
    ("cell-holds-no-baseline", ["--dirty"], {"IMAGING_CELLSIZE": "0.0005"}, "IMAGING_CELLSIZE"),
    ("cell-nan", ["--dirty"], {"IMAGING_CELLSIZE": "nan"}, "IMAGING_CELLSIZE"),
    # Blocks bound a run's memory: a million AA4 channels is a disk problem now (2.5 TiB), found before compute.
    ("run-beyond-disk", ["--vis"], {"TELESCOPE": "SKA-MID-AA4", "FREQ_INC_HZ": "71"}, "OUT_DIR"),
    ("memory-limit-below-one-block", ["--vis"], {"MEMORY_LIMIT": "50MiB"}, "MEMORY_LIMIT"),
    ("catalogue-nan-flux", ["--vis"], {"SKY_MODEL": "nan_flux"}, "SKY_MODEL"),
    ("catalogue-inf-flux", ["--vis"], {"SKY_MODEL": "inf_flux"}, "SKY_MODEL"),
    ("catalogue-nan-position", ["--vis"], {"SKY_MODEL": "nan_ra"}, "SKY_MODEL"),
    ("catalogue-nan-size", ["--vis"], {"SKY_MODEL": "nan_size"}, "SKY_MODEL"),
    ("catalogue-flux-overflows-in-band", ["--vis"], {"SKY_MODEL": "steep"}, "SKY_MODEL"),
    ("layout-nan", ["--vis"], {"TELESCOPE": "nan_layout"}, "TELESCOPE"),
    ("site-nan", ["--vis"], {"TELESCOPE": "nan_site"}, "TELESCOPE"),
    ("layout-two-dishes-in-one-place", ["--vis"], {"TELESCOPE": "same_place"}, "TELESCOPE"),
    ("layout-off-earth", ["--vis"], {"TELESCOPE": "off_earth"}, "TELESCOPE"),
    ("layout-one-dish", ["--vis"], {"TELESCOPE": "one_dish"}, "TELESCOPE"),
    ("config-is-a-directory", ["--vis", "--config", "config_dir"], {}, "--config"),
    ("config-inf", ["--vis", "--config", "inf_toml"], {}, "END_FREQ_HZ"),
    ("out-dir-path-too-long", ["--vis"], {"OUT_DIR": "deep"}, "OUT_DIR"),
    ("tmpdir-path-too-long", ["--vis"], {"TMPDIR": "deep"}, "TMPDIR"),
    ("mightee-nan-flux", ["--vis"], {"SKY_MODEL": "MIGHTEE_L1", "SKY_MODEL_PATH": "mightee_nan"}, "SKY_MODEL_PATH"),
]
IMAGE = [
    ("control-image", ["--npixel", "64", "--niter", "0", "--allow-uv-cut", "--no-preview"], "ms", None),
    ("image-npixel-odd", ["--npixel", "257"], "ms", "--npixel"),
    ("image-npixel-beyond-memory", ["--npixel", "200000"], "ms", "--npixel"),
    ("image-cell-nan", ["--cellsize-arcsec", "nan"], "ms", "--cellsize-arcsec"),
    ("image-cell-zero", ["--cellsize-arcsec", "0"], "ms", "--cellsize-arcsec"),
    ("image-cell-past-horizon", ["--cellsize-arcsec", "600"], "ms", "--cellsize-arcsec"),
    ("image-robust-inf", ["--robust", "inf"], "ms", "--robust"),
    ("image-gain-zero", ["--gain", "0"], "ms", "--gain"),
    ("image-mgain-above-one", ["--mgain", "1.5"], "ms", "--mgain"),
    ("image-niter-negative", ["--niter", "-1"], "ms", "--niter"),
    ("image-threshold-nan", ["--threshold", "nan"], "ms", "--threshold"),
    ("image-scales-inf", ["--multiscale", "--multiscale-scales", "0,inf"], "ms", "--multiscale-scales"),
    ("image-name-with-slash", ["--name", "a/b"], "ms", "--name"),
    ("image-name-too-long", ["--name", "n" * 230], "ms", "--name"),
    ("image-ms-missing", [], "missing", "MS"),
    ("image-not-an-ms", [], "not_ms", "MS"),
    ("image-all-flagged", [], "flagged_ms", "MS"),
]


def _check(result, expected: str | None, out: Path, scratch: Path) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    if expected is None:
        assert result.returncode == 0, result.stderr
        assert any(out.iterdir()), "the control case wrote nothing"
    else:
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"srcnet-sim: error: {expected}: "), lines[0]
        assert list(out.iterdir()) == [], "something was written"
    assert list(scratch.iterdir()) == [], "scratch left in TMPDIR"


@pytest.mark.parametrize("args, settings, expected", [case[1:] for case in RUN], ids=[case[0] for case in RUN])
def test_run_refuses_before_compute(files: dict[str, Path], tmp_path: Path, args, settings, expected):
    out = _deep_dir(tmp_path / "o") if settings.get("OUT_DIR") == "deep" else tmp_path / "out"
    scratch = _deep_dir(tmp_path / "t") if settings.get("TMPDIR") == "deep" else tmp_path / "scratch"
    out.mkdir(exist_ok=True)
    scratch.mkdir(exist_ok=True)
    env = {**TINY, "OUT_DIR": str(out), "TMPDIR": str(scratch)}
    env.update({key: str(files.get(value, value)) for key, value in settings.items() if value != "deep"})
    result = run_cli(["run", *(str(files.get(a, a)) for a in args)], env=env)
    _check(result, expected, out, scratch)


@pytest.mark.parametrize("options, ms, expected", [case[1:] for case in IMAGE], ids=[case[0] for case in IMAGE])
def test_image_refuses_before_work(files: dict[str, Path], tmp_path: Path, options, ms, expected):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    path = files.get(ms, tmp_path / "no-such.ms")
    # argparse keeps an option's last value: the case's options override these.
    argv = ["--cellsize-arcsec", "1", "--npixel", "64", "--out-dir", str(out), *options]
    result = run_cli(["image", str(path), *argv], env={"TMPDIR": str(scratch)})
    _check(result, expected, out, scratch)


def test_volumes_sharing_a_filesystem_must_hold_the_sum(tmp_path: Path, monkeypatch):
    """OUT_DIR and TMPDIR on one filesystem: each product fits alone, both together do not."""
    monkeypatch.setattr(validation, "free_bytes", lambda path: 150)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    validation.check_volumes(out, 100, "x.ms.tar", out, 0, "")  # alone it fits
    with pytest.raises(UserInputError, match=r"^OUT_DIR: .* x.ms.tar need about 200 B together with x.ms made in TMPDIR"):
        validation.check_volumes(out, 100, "x.ms.tar", scratch, 100, "x.ms")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_limit_bounds_available_memory(tmp_path: Path, version: str):
    """A container's memory limit (cgroup v1 or v2, nested) bounds the memory a run may plan for."""
    if version == "v2":
        proc = "0::/kubepods/pod1/ctr\n"
        outer, inner = tmp_path / "kubepods" / "pod1", tmp_path / "kubepods" / "pod1" / "ctr"
        files = ("memory.max", "memory.current", "inactive_file")
    else:
        proc = "4:memory:/kubepods/pod1/ctr\n3:cpu,cpuacct:/kubepods/pod1/ctr\n"
        outer, inner = tmp_path / "memory" / "kubepods" / "pod1", tmp_path / "memory" / "kubepods" / "pod1" / "ctr"
        files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    inner.mkdir(parents=True)
    limit, usage, stat_key = files
    (outer / limit).write_text("3000000000\n")  # the pod's limit binds
    (outer / usage).write_text("1000000000\n")
    (outer / "memory.stat").write_text(f"{stat_key} 400000000\nanon 600000000\n")
    (inner / limit).write_text("max\n" if version == "v2" else "9223372036854771712\n")  # no limit of its own
    (inner / usage).write_text("900000000\n")
    assert resources.cgroup_available_bytes(tmp_path, proc) == 3_000_000_000 - 600_000_000
    assert resources.cgroup_available_bytes(tmp_path / "elsewhere", proc) is None
