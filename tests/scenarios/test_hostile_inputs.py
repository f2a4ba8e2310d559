"""Hostile and mistaken inputs: every one is refused before any compute, by the real CLI, with one line.

Each case runs `srcnet-sim run` (or `image`, `qa`, `estimate --check`) in a fresh OUT_DIR and TMPDIR and expects
exit 2, exactly one non-log line on stderr, "srcnet-sim: error: <SETTING>: ...", no traceback, and both
directories left empty. The control cases pass the same harness with exit 0, so that the table cannot pass by
refusing everything; the warning cases succeed and must log their warning.

Every file a run reads is tried as each kind of file (FIFO, device, directory, link to a device, link to
nothing, too large) and text in each encoding (Latin-1, UTF-16, random bytes, NUL bytes; UTF-8 with BOM and
CRLF must work), every TOML setting with values of the wrong TOML type, dates outside the stated range.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.table import Table
from casacore.tables import taql

from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.fs import input_files
from srcnet_sim.fs import space
from srcnet_sim.run import preflight
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
    fifo = d / "fifo.csv"
    os.mkfifo(fifo)
    (d / "zero-link.csv").symlink_to("/dev/zero")
    (d / "dangling.csv").symlink_to(d / "no-such.csv")
    (d / "dir.csv").mkdir()
    good_csv = write_csv_sky(d / "good.csv", [(150.12, 2.21, 1.0), (150.121, 2.211, 0.5)])
    (d / "good-link.csv").symlink_to(good_csv)
    fifo_layout = _tm(d / "fifo-layout.tm", site, "")
    (fifo_layout / "layout.txt").unlink()
    os.mkfifo(fifo_layout / "layout.txt")
    fifo_ms = d / "fifo-table.ms"
    fifo_ms.mkdir()
    os.mkfifo(fifo_ms / "table.dat")
    rows = "150.12,2.21,1.0\r\n150.121,2.211,0.5\r\n"
    latin1_layout = _tm(d / "latin1-layout.tm", site, "")
    (latin1_layout / "layout.txt").write_bytes("0,0,0\n100,0,0 # é\n0,250,1\n".encode("latin-1"))
    return {
        "fifo": fifo, "zero_link": d / "zero-link.csv", "dangling": d / "dangling.csv", "dir_csv": d / "dir.csv",
        "good_link": d / "good-link.csv", "fifo_layout": fifo_layout, "fifo_ms": fifo_ms,
        "file_as_telescope": good_csv, "good_csv": good_csv,
        "huge_csv": _sparse(d / "huge.csv", input_files.MAX_CATALOGUE_TEXT_BYTES + 1),
        "huge_toml": _sparse(d / "huge.toml", input_files.MAX_TOML_BYTES + 1),
        "latin1_csv": _bytes(d / "latin1.csv", "ra_deg,dec_deg,i_jy,name\n150.12,2.21,1.0,Café\n".encode("latin-1")),
        "utf16_csv": _bytes(d / "utf16.csv", "ra_deg,dec_deg,i_jy\n150.12,2.21,1.0\n".encode("utf-16")),
        "utf16be_csv": _bytes(d / "utf16be.csv", "ra_deg,dec_deg,i_jy\n150.12,2.21,1.0\n".encode("utf-16-be")),
        "random_csv": _bytes(d / "random.csv", np.random.default_rng(1).integers(128, 256, 4096, dtype=np.uint8).tobytes()),
        "nul_osm": _bytes(d / "nul.osm", b"150.12 2.21 1.0\n\0\0\0\n"),
        "latin1_osm": _bytes(d / "latin1.osm", "# Café\n150.12 2.21 1.0\n".encode("latin-1")),
        "bom_crlf_csv": _bytes(d / "bom-crlf.csv", b"\xef\xbb\xbf" + ("ra_deg,dec_deg,i_jy\r\n" + rows).encode()),
        "latin1_layout": latin1_layout,
        "latin1_toml": _bytes(d / "latin1.toml", "# café\nSEED = 1\n".encode("latin-1")),
        "utf16_toml": _bytes(d / "utf16.toml", "SEED = 1\n".encode("utf-16")),
        "typed_toml": _text(d / "typed.toml", 'SEED = 7\nSTART_FREQ_HZ = 1304000000\nMEMORY_LIMIT = "8GiB"\n'
                                              'BEAM = "gaussian"\nIMAGING_CELLSIZE = 2e-5\n'
                                              "START_DATE_AND_TIME = 2020-04-26T16:36:00Z\n"),
        **{f"toml_{name}": _text(d / f"{name}.toml", text) for name, text in TOML_TYPE_CASES.items()},
        "karabo_hi": _karabo_hi(d / "karabo.h5"),
        "karabo_hi_not_hdf5": _bytes(d / "random.h5", np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        "karabo_hi_no_flux": _karabo_hi(d / "no-flux.h5", Flux=None),
        "karabo_hi_nan_redshift": _karabo_hi(d / "nan-z.h5", Observed_Redshift=np.array([0.05, np.nan])),
        "karabo_hi_2d": _karabo_hi(d / "2d.h5", Declination=np.array([[2.21, 2.211]])),
        "karabo_hi_lengths": _karabo_hi(d / "lengths.h5", Declination=np.array([2.21])),
        "karabo_hi_bad_units": _karabo_hi(d / "units.h5", flux="erg"),
        "karabo_hi_fifo": _fifo(d / "fifo.h5"),
        "negative_flux": write_csv_sky(d / "negative.csv", [(150.12, 2.21, 1.0), (150.121, 2.211, -0.5)]),
        "duplicates": write_csv_sky(d / "duplicates.csv", [(150.12, 2.21, 1.0), (150.121, 2.211, 0.5),
                                                           (150.12, 2.21, 1.0)]),
        "ms": ms, "flagged_ms": flagged, "not_ms": d / "not-an-ms", "mightee_nan": d / "mightee-nan.fits",
        "nan_flux": write_csv_sky(d / "nan-flux.csv", [(150.12, 2.21, 1.0), (150.121, 2.211, float("nan"))]),
        "polarised": write_csv_sky(d / "polarised.csv", [(150.12, 2.21, 1.0, 0.1)], header="ra_deg,dec_deg,i_jy,q_jy"),
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


def _karabo_hi(path: Path, flux: object = "J/m²/s = 10^(26)*Jy*Hz", **datasets: np.ndarray) -> Path:
    """Karabo's HI catalogue layout (sky.karabo_hi): two galaxies near the phase centre at z = 0.05 (a line at
    1352.8 MHz), with the datasets given replacing (or, as None, removing) the good ones."""
    columns = {"Right Ascension": np.array([150.12, 150.121]), "Declination": np.array([2.21, 2.211]),
               "Flux": np.array([1e-24, 5e-25]), "Observed Redshift": np.array([0.05, 0.05])}
    columns.update({name.replace("_", " "): values for name, values in datasets.items()})
    with h5py.File(path, "w") as h5:
        for name, values in columns.items():
            if values is not None:
                h5.create_dataset(name, data=values)
        if "Flux" in h5:
            h5["Flux"].attrs["Units"] = flux
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a hole)."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


# TOML values of the wrong type for their setting (key: (TOML text, setting named in the error)).
TOML_TYPE_CASES = {
    "bool_seed": "SEED = true\n", "string_steps": 'NUM_TIME_STAMPS = "4"\n', "string_freq": 'START_FREQ_HZ = "1.3e9"\n',
    "int_beam": "BEAM = 1\n", "bool_noise": "NOISE = false\n", "array_length": "OBS_LENGTH_HOURS = [1.0]\n",
    "table_prefix": "[FILE_PREFIX]\na = 1\n", "float_steps": "NUM_TIME_STAMPS = 4.0\n",
    "int_start": "START_DATE_AND_TIME = 2020\n", "bool_memory": "MEMORY_LIMIT = true\n",
    "int_namespace": "RUCIO_NAMESPACE = 7\n", "bool_cellsize": "IMAGING_CELLSIZE = true\n",
}
TOML_TYPE_SETTINGS = {
    "bool_seed": "SEED", "string_steps": "NUM_TIME_STAMPS", "string_freq": "START_FREQ_HZ", "int_beam": "BEAM",
    "bool_noise": "NOISE", "array_length": "OBS_LENGTH_HOURS", "table_prefix": "FILE_PREFIX",
    "float_steps": "NUM_TIME_STAMPS", "int_start": "START_DATE_AND_TIME", "bool_memory": "MEMORY_LIMIT",
    "int_namespace": "RUCIO_NAMESPACE", "bool_cellsize": "IMAGING_CELLSIZE",
}


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
    ("gpu-polarised-sky-turning-beams", ["--vis"], {"TELESCOPE": "SKA-MID-AAstar", "BEAM": "everybeam", "BACKEND": "gpu",
                                                    "SKY_MODEL": "polarised"}, "BACKEND"),
    # Karabo's HI catalogue (HDF5): the good one, and each way it can be wrong.
    ("control-karabo-hi", ["--vis"], {"SKY_MODEL": "karabo_hi"}, None),
    ("karabo-hi-not-hdf5", ["--vis"], {"SKY_MODEL": "karabo_hi_not_hdf5"}, "SKY_MODEL"),
    ("karabo-hi-no-flux", ["--vis"], {"SKY_MODEL": "karabo_hi_no_flux"}, "SKY_MODEL"),
    ("karabo-hi-nan-redshift", ["--vis"], {"SKY_MODEL": "karabo_hi_nan_redshift"}, "SKY_MODEL"),
    ("karabo-hi-2d", ["--vis"], {"SKY_MODEL": "karabo_hi_2d"}, "SKY_MODEL"),
    ("karabo-hi-lengths", ["--vis"], {"SKY_MODEL": "karabo_hi_lengths"}, "SKY_MODEL"),
    ("karabo-hi-bad-units", ["--vis"], {"SKY_MODEL": "karabo_hi_bad_units"}, "SKY_MODEL"),
    ("karabo-hi-fifo", ["--vis"], {"SKY_MODEL": "karabo_hi_fifo"}, "SKY_MODEL"),
    ("mightee-nan-flux", ["--vis"], {"SKY_MODEL": "MIGHTEE_L1", "SKY_MODEL_PATH": "mightee_nan"}, "SKY_MODEL_PATH"),
    # Every kind of file where a catalogue, a TOML file, a telescope model and its files belong.
    ("control-catalogue-via-link", ["--vis"], {"SKY_MODEL": "good_link"}, None),
    ("control-catalogue-utf8-bom-crlf", ["--vis"], {"SKY_MODEL": "bom_crlf_csv"}, None),
    ("catalogue-fifo", ["--vis"], {"SKY_MODEL": "fifo"}, "SKY_MODEL"),
    ("catalogue-device", ["--vis"], {"SKY_MODEL": "/dev/zero"}, "SKY_MODEL"),
    ("catalogue-link-to-device", ["--vis"], {"SKY_MODEL": "zero_link"}, "SKY_MODEL"),
    ("catalogue-dangling-link", ["--vis"], {"SKY_MODEL": "dangling"}, "SKY_MODEL"),
    ("catalogue-directory", ["--vis"], {"SKY_MODEL": "dir_csv"}, "SKY_MODEL"),
    ("catalogue-huge", ["--vis"], {"SKY_MODEL": "huge_csv"}, "SKY_MODEL"),
    ("catalogue-latin1", ["--vis"], {"SKY_MODEL": "latin1_csv"}, "SKY_MODEL"),
    ("catalogue-utf16", ["--vis"], {"SKY_MODEL": "utf16_csv"}, "SKY_MODEL"),
    ("catalogue-utf16-no-bom", ["--vis"], {"SKY_MODEL": "utf16be_csv"}, "SKY_MODEL"),
    ("catalogue-random-bytes", ["--vis"], {"SKY_MODEL": "random_csv"}, "SKY_MODEL"),
    ("catalogue-oskar-nul-bytes", ["--vis"], {"SKY_MODEL": "nul_osm"}, "SKY_MODEL"),
    ("catalogue-oskar-latin1", ["--vis"], {"SKY_MODEL": "latin1_osm"}, "SKY_MODEL"),
    ("mightee-path-fifo", ["--vis"], {"SKY_MODEL": "MIGHTEE_L1", "SKY_MODEL_PATH": "fifo"}, "SKY_MODEL_PATH"),
    ("mightee-path-device", ["--vis"], {"SKY_MODEL": "MIGHTEE_L1", "SKY_MODEL_PATH": "/dev/zero"}, "SKY_MODEL_PATH"),
    ("telescope-is-a-file", ["--vis"], {"TELESCOPE": "file_as_telescope"}, "TELESCOPE"),
    ("telescope-device", ["--vis"], {"TELESCOPE": "/dev/zero"}, "TELESCOPE"),
    ("telescope-layout-fifo", ["--vis"], {"TELESCOPE": "fifo_layout"}, "TELESCOPE"),
    ("telescope-layout-latin1", ["--vis"], {"TELESCOPE": "latin1_layout"}, "TELESCOPE"),
    ("config-device", ["--vis", "--config", "/dev/zero"], {}, "--config"),
    ("config-fifo", ["--vis", "--config", "fifo"], {}, "--config"),
    ("config-link-to-device", ["--vis", "--config", "zero_link"], {}, "--config"),
    ("config-huge", ["--vis", "--config", "huge_toml"], {}, "--config"),
    ("config-latin1", ["--vis", "--config", "latin1_toml"], {}, "--config"),
    ("config-utf16", ["--vis", "--config", "utf16_toml"], {}, "--config"),
    ("config-from-env-device", ["--vis"], {"SRCNET_SIM_CONFIG": "/dev/zero"}, "--config"),
    # Every TOML type where another belongs (environment and CLI strings are parsed, as before).
    ("control-config-typed", ["--vis", "--config", "typed_toml"], {}, None),
    *((f"config-type-{name}", ["--vis", "--config", f"toml_{name}"], {}, TOML_TYPE_SETTINGS[name])
      for name in TOML_TYPE_CASES),
    # Dates outside what UTC and the Earth-orientation tables reach.
    ("date-year-one", ["--vis"], {"START_DATE_AND_TIME": "0001-01-01T00:00"}, "START_DATE_AND_TIME"),
    ("date-before-iers", ["--vis"], {"START_DATE_AND_TIME": "1961-12-31T12:00"}, "START_DATE_AND_TIME"),
    ("date-ends-past-2100", ["--vis"], {"START_DATE_AND_TIME": "2099-12-31T23:00"}, "START_DATE_AND_TIME"),
    ("date-year-9999", ["--vis"], {"START_DATE_AND_TIME": "9999-12-31T23:00"}, "START_DATE_AND_TIME"),
    ("date-length-overflows", ["--vis"], {"START_DATE_AND_TIME": "9999-12-01T00:00", "OBS_LENGTH_HOURS": "700"},
     "START_DATE_AND_TIME"),
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
    ("image-ms-fifo", [], "fifo", "MS"),
    ("image-ms-device", [], "/dev/zero", "MS"),
    ("image-ms-table-fifo", [], "fifo_ms", "MS"),
]
QA = [
    ("qa-image-fifo", "fifo", "good_csv", "IMAGE"),
    ("qa-image-device", "/dev/zero", "good_csv", "IMAGE"),
    ("qa-image-directory", "dir_csv", "good_csv", "IMAGE"),
    ("qa-truth-link-to-device", "good_csv", "zero_link", "TRUTH"),
    ("qa-truth-missing", "good_csv", "dangling", "TRUTH"),
]
# Runs that succeed with a warning (setting -> file key or value, a pattern the warning must match).
WARN = [
    ("negative-stokes-i", {"SKY_MODEL": "negative_flux"}, r"WARNING SKY_MODEL: 1 of 2 sources of .* negative Stokes I"),
    ("duplicate-positions", {"SKY_MODEL": "duplicates"}, r"WARNING SKY_MODEL: 1 of 3 sources of .* share a position"),
    ("date-past-the-tables", {"START_DATE_AND_TIME": "2040-01-01T00:00"},
     r"WARNING START_DATE_AND_TIME: the observation ends 2040-01-01T04:00 UTC, past the measures tables in use: "
     r"leap seconds are known to \d{4}-\d\d-\d\d"),
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


@pytest.mark.parametrize("settings, warning", [case[1:] for case in WARN], ids=[case[0] for case in WARN])
def test_run_warns_and_runs(files: dict[str, Path], tmp_path: Path, settings, warning):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    env = {**TINY, "OUT_DIR": str(out), "TMPDIR": str(scratch)}
    env.update({key: str(files.get(value, value)) for key, value in settings.items()})
    result = run_cli(["run", "--vis"], env=env)
    _check(result, None, out, scratch)
    assert len(re.findall(warning, result.stderr)) == 1, result.stderr


def test_run_on_dates_inside_the_tables_warns_of_nothing(tmp_path: Path):
    """The default observation (2020) lies inside every table: no measures warning, and no SEVERE line."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    result = run_cli(["run", "--vis"], env={**TINY, "OUT_DIR": str(out), "TMPDIR": str(scratch)})
    _check(result, None, out, scratch)
    assert "WARNING" not in result.stderr and "SEVERE" not in result.stderr, result.stderr


@pytest.mark.parametrize("image, truth, expected", [case[1:] for case in QA], ids=[case[0] for case in QA])
def test_qa_refuses_before_work(files: dict[str, Path], tmp_path: Path, image, truth, expected):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    result = run_cli(["qa", str(files.get(image, image)), str(files.get(truth, truth)), "--out-dir", str(out)],
                     env={"TMPDIR": str(scratch)})
    _check(result, expected, out, scratch)


def test_estimate_gives_a_verdict_and_check_exits_as_run_would(tmp_path: Path):
    """A run beyond the disk: `estimate` says "does not fit" and exits 0; with --check it exits 2 with run's line."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    env = {**TINY, "OUT_DIR": str(out), "TMPDIR": str(scratch), "TELESCOPE": "SKA-MID-AA4", "FREQ_INC_HZ": "71"}
    listed = run_cli(["estimate", "--vis"], env=env)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^verdict OUT_DIR +does not fit: OUT_DIR: .* free but measurements.ms.tar need", listed.stdout, re.M)
    assert re.search(r"^verdict memory +fits$", listed.stdout, re.M)
    checked = run_cli(["estimate", "--vis", "--check"], env=env)
    refused = run_cli(["run", "--vis"], env=env)
    _check(checked, "OUT_DIR", out, scratch)
    error_line = [line for line in refused.stderr.splitlines() if line.startswith("srcnet-sim: error:")]
    assert [line for line in checked.stderr.splitlines() if line.startswith("srcnet-sim: error:")] == error_line
    fits = run_cli(["estimate", "--vis", "--check"], env={**TINY, "OUT_DIR": str(out), "TMPDIR": str(scratch)})
    assert fits.returncode == 0, fits.stderr
    assert len(re.findall(r"^verdict \S+ +fits$", fits.stdout, re.M)) == 3, fits.stdout


@pytest.mark.parametrize("options, ms, expected", [case[1:] for case in IMAGE], ids=[case[0] for case in IMAGE])
def test_image_refuses_before_work(files: dict[str, Path], tmp_path: Path, options, ms, expected):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    path = files.get(ms) or (Path(ms) if ms.startswith("/") else tmp_path / "no-such.ms")
    # argparse keeps an option's last value: the case's options override these.
    argv = ["--cellsize-arcsec", "1", "--npixel", "64", "--out-dir", str(out), *options]
    result = run_cli(["image", str(path), *argv], env={"TMPDIR": str(scratch)})
    _check(result, expected, out, scratch)


def test_volumes_sharing_a_filesystem_must_hold_the_sum(tmp_path: Path, monkeypatch):
    """OUT_DIR and TMPDIR on one filesystem: each product fits alone, both together do not."""
    monkeypatch.setattr(preflight, "free_bytes", lambda path: 150)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    preflight.check_volumes(out, 100, "x.ms.tar", out, 0, "")  # alone it fits
    with pytest.raises(UserInputError, match=r"^OUT_DIR: .* x.ms.tar need about 200 B together with x.ms made in TMPDIR"):
        preflight.check_volumes(out, 100, "x.ms.tar", scratch, 100, "x.ms")


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
    assert space.cgroup_available_bytes(tmp_path, proc) == 3_000_000_000 - 600_000_000
    assert space.cgroup_available_bytes(tmp_path / "elsewhere", proc) is None
