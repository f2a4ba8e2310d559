"""VIS_FORMAT=msv4|both: the MeasurementSet v4 we write, checked with xradio (its schema check, its reader and its
own MSv2 -> MSv4 converter run on our MSv2 of the same run), byte-identical whoever writes its chunks, and refused
with one line when it cannot be written."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from casacore.tables import table

from block_runs import environment, fresh_dirs, run
from conftest import run_cli, unpack_ms

ZIP = "b_measurements.ps.zarr.zip"
TAR = "b_measurements.ms.tar"
# RFI in the band (GPS L2 and Galileo E6 lie in 1.20-1.27 GHz), so that FLAG holds flags; MODEL_DATA and GAINS (SMALL).
FLAGGED = {"RFI": "on", "START_FREQ_HZ": "1.2e9", "END_FREQ_HZ": "1.271e9"}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+Z srcnet-sim [A-Z]+ ")
COMPARED = ("VISIBILITY", "UVW", "WEIGHT", "FLAG", "TIME_CENTROID", "EFFECTIVE_INTEGRATION_TIME")


def error_lines(stderr: str) -> list[str]:
    """stderr without the log's lines: what a user reads as the error."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def open_zip(path: Path):
    """Our staged zip opened in place, as a reader of the datalake would: xarray on zarr's ZipStore."""
    import xarray as xr
    import zarr

    return xr.open_datatree(zarr.storage.ZipStore(str(path), mode="r"), engine="zarr", chunks={})


def partition(tree):
    return tree[next(iter(tree.children))].ds


def test_msv4_passes_xradios_schema_and_equals_its_conversion_of_our_msv2(tmp_path: Path):
    from xradio.measurement_set import convert_msv2_to_processing_set, open_processing_set
    from xradio.schema.check import check_datatree

    out, tmp = fresh_dirs(tmp_path, "both")
    result = run(["--vis"], environment(out, tmp, VIS_FORMAT="both", **FLAGGED))
    assert result.returncode == 0, result.stderr
    staged = out / "blocks"
    ours = open_zip(staged / ZIP)
    issues = check_datatree(ours)
    assert len(issues) == 0, str(issues)
    assert ours.attrs["type"] == "processing_set" and partition(ours).attrs["schema_version"] == "4.0.1"

    # xradio's own reader opens the store once unpacked (its open_processing_set takes a directory or an S3 URL)
    unpacked = tmp_path / "unpacked.ps.zarr"
    with zipfile.ZipFile(staged / ZIP) as archive:
        archive.extractall(unpacked)
    assert len(check_datatree(open_processing_set(str(unpacked)))) == 0

    ms = unpack_ms(staged / TAR, tmp_path / "ms")
    converted = tmp_path / "converted.ps.zarr"
    convert_msv2_to_processing_set(str(ms), str(converted), parallel_mode="none", persistence_mode="w")
    reference, mine = partition(open_processing_set(str(converted))), partition(ours)
    assert reference.FLAG.values.any(), "the run should have flagged RFI"
    for name in COMPARED:  # bit for bit: the converter recomputes nothing of these
        assert reference[name].dtype == mine[name].dtype, name
        assert reference[name].values.tobytes() == mine[name].values.tobytes(), f"{name} differs"
    for name in ("time", "frequency", "polarization", "baseline_antenna1_name", "baseline_antenna2_name"):
        np.testing.assert_array_equal(reference[name].values, mine[name].values, err_msg=name)
    assert mine.time.attrs["integration_time"] == reference.time.attrs["integration_time"]
    assert mine.frequency.attrs["channel_width"] == reference.frequency.attrs["channel_width"]
    with table(str(ms), ack=False) as main:  # MODEL_DATA=on: the model group holds the MSv2's MODEL_DATA
        model = main.getcol("MODEL_DATA").reshape(mine.VISIBILITY_MODEL.shape)
    assert model.tobytes() == mine.VISIBILITY_MODEL.values.tobytes()
    assert mine.attrs["data_groups"]["model"]["correlated_data"] == "VISIBILITY_MODEL"
    antennas = ours[next(iter(ours.children))]["antenna_xds"].ds
    with table(f"{ms}/ANTENNA", ack=False) as antenna:
        np.testing.assert_array_equal(antennas.ANTENNA_POSITION.values, antenna.getcol("POSITION"))

    # imaging reads the same samples from either format (bit for bit), and `srcnet-sim image` takes the zip
    from srcnet_sim.imaging.sources import open_visibilities

    v2, v4 = open_visibilities(ms, chunk_samples=800), open_visibilities(staged / ZIP, chunk_samples=800)
    assert type(v2).__name__ == "MeasurementSetSource" and type(v4).__name__ == "ProcessingSetSource"
    assert (v2.n_rows, v2.rows_per_chunk) == (v4.n_rows, v4.rows_per_chunk) and v2.main_scan == v4.main_scan
    assert v2.rows_per_chunk % mine.sizes["baseline_id"], "chunks should start inside a time step"
    for a, b in [*zip(v2.chunks(), v4.chunks(), strict=True), (v2.read_channels(100, 150, (2, 9)),
                                                                v4.read_channels(100, 150, (2, 9)))]:
        for field in ("uvw_m", "vis", "weight", "freq_hz", "channel_width_hz"):
            assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), field
    images = {}
    for name, source in (("msv2", ms), ("msv4", staged / ZIP)):
        (tmp_path / name).mkdir()
        imaged = run_cli(["image", str(source), "--npixel", "256", "--cellsize-arcsec", "4", "--allow-uv-cut",
                          "--niter", "100", "--out-dir", str(tmp_path / name), "--name", "i", "--no-preview"])
        assert imaged.returncode == 0, imaged.stderr
        images[name] = fits.getdata(tmp_path / name / "i-cleaned.fits")
    # the same samples; the imager's threaded sums are not bit-reproducible run to run (~1e-7 of the peak)
    np.testing.assert_allclose(images["msv4"], images["msv2"], rtol=0, atol=1e-6 * np.abs(images["msv2"]).max())

    # the two sidecars describe the same observation; only the format and the names differ
    msv2_meta = json.loads((staged / (TAR + ".meta")).read_text())["meta"]
    msv4_meta = json.loads((staged / (ZIP + ".meta")).read_text())["meta"]
    assert msv4_meta["access_format"] == "application/zip; profile=zarr-v3-msv4"
    assert msv4_meta["access_estsize"] == -(-(staged / ZIP).stat().st_size // 1024)
    differ = {"access_format", "access_url", "access_estsize", "obs_publisher_did"}
    assert {k: v for k, v in msv2_meta.items() if k not in differ} == {k: v for k, v in msv4_meta.items() if k not in differ}


def test_the_msv2_is_the_same_whether_an_msv4_is_written_beside_it(tmp_path: Path):
    columns = {}
    shared_out = tmp_path / "out"  # the same OUT_DIR for both (a setting, in the MS's HISTORY)
    shared_out.mkdir()
    for vis_format in ("msv2", "both"):
        _, tmp = fresh_dirs(tmp_path, vis_format)
        result = run(["--vis"], environment(shared_out, tmp, VIS_FORMAT=vis_format))
        assert result.returncode == 0, result.stderr
        ms = unpack_ms(shared_out / "blocks" / TAR, tmp_path / f"ms-{vis_format}")
        shutil.rmtree(shared_out / "blocks")
        with table(str(ms), ack=False) as main, table(f"{ms}/HISTORY", ack=False) as history:
            columns[vis_format] = {name: main.getcol(name).tobytes() for name in ("DATA", "MODEL_DATA", "FLAG", "UVW",
                                                                                   "WEIGHT", "TIME")}
            columns[vis_format]["HISTORY"] = list(history.getcol("MESSAGE"))
    assert columns["msv2"] == columns["both"]


def test_dask_workers_write_their_own_chunks_and_the_same_store_as_one_local_thread(tmp_path: Path):
    zips = {}
    for name, settings in (("local", {"WORKER_THREADS": "1"}), ("dask", {"EXECUTOR": "dask", "DASK_WORKERS": "2"})):
        out, tmp = fresh_dirs(tmp_path, name)
        # the same OUT_DIR for both (it is in the store's observing log): the first run's products moved away
        env = environment(tmp_path / "out", tmp, VIS_FORMAT="msv4", **settings)
        (tmp_path / "out").mkdir(exist_ok=True)
        result = run(["--vis"], env)
        assert result.returncode == 0, result.stderr
        if name == "dask":
            assert re.search(r"msv4: (\d+) of \1 blocks written by the Dask workers themselves", result.stderr), \
                result.stderr
        zips[name] = (tmp_path / "out" / "blocks" / ZIP).read_bytes()
        shutil.rmtree(tmp_path / "out" / "blocks")
        assert not any(tmp.iterdir())
    assert zips["local"] == zips["dask"]


def test_an_unknown_vis_format_and_a_missing_zarr_are_refused_with_one_line(tmp_path: Path):
    out, tmp = fresh_dirs(tmp_path, "bad")
    result = run(["--vis"], environment(out, tmp, VIS_FORMAT="msv5"))
    assert result.returncode == 2
    assert [line.split(": ")[:2] for line in error_lines(result.stderr)] == [["srcnet-sim", "error"]], result.stderr
    assert error_lines(result.stderr)[0].startswith("srcnet-sim: error: VIS_FORMAT: "), result.stderr
    # zarr missing: a package of that name that fails to import, first on the path
    fake = tmp_path / "no-zarr" / "zarr"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'zarr'\", name='zarr')\n")
    env = environment(out, tmp, VIS_FORMAT="msv4")
    env["PYTHONPATH"] = f"{fake.parent}:{env['PYTHONPATH']}"
    result = run(["--vis"], env)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("srcnet-sim: error: VIS_FORMAT: ") and "srcnet-sim[msv4]" in lines[0]
    assert not any(out.rglob("*")) and not any(tmp.iterdir())


def test_a_store_too_large_for_the_volumes_is_refused_before_any_work(tmp_path: Path):
    """An MSv4 alone (VIS_FORMAT=msv4: no MSv2 is made) larger than the free space: one line naming the volume and the
    store, exit 2, nothing written (the estimate is what preflight checks)."""
    from srcnet_sim.fs.space import free_bytes
    from srcnet_sim.sizing import msv4_bytes

    out, tmp = fresh_dirs(tmp_path, "large")
    per_step = msv4_bytes(2, 10296, 16) - msv4_bytes(1, 10296, 16)  # AA*'s 10,296 baselines x SMALL's 16 channels
    steps = int(1.5 * free_bytes(tmp_path) / per_step) // 2 + 1  # 0.75 x the free space, twice (made and staged)
    result = run(["--vis"], environment(out, tmp, VIS_FORMAT="msv4", TELESCOPE="SKA-MID-AAstar", MODEL_DATA="off",
                                        NUM_TIME_STAMPS=str(steps)))
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("srcnet-sim: error: OUT_DIR: "), result.stderr
    assert "b_measurements.ps.zarr" in lines[0] and "b_measurements.ms" not in lines[0], lines[0]
    assert not any(out.rglob("*")) and not any(tmp.iterdir())


def test_the_estimate_of_the_msv4_is_its_size_on_disk(tmp_path: Path):
    out, tmp = fresh_dirs(tmp_path, "size")
    result = run(["--vis"], environment(out, tmp, VIS_FORMAT="msv4", TELESCOPE="SKA-MID-AAstar", NUM_TIME_STAMPS="4",
                                        **FLAGGED))
    assert result.returncode == 0, result.stderr
    from srcnet_sim.sizing import msv4_bytes

    with zipfile.ZipFile(out / "blocks" / ZIP) as archive:
        names = archive.namelist()
        vis = archive.getinfo(next(n for n in names if n.endswith("/VISIBILITY/zarr.json")))
        shape = json.loads(archive.read(vis))["shape"]
    n_t, n_bl, n_c, _ = shape
    expected = msv4_bytes(n_t, n_bl, n_c, model_data=True)
    assert abs((out / "blocks" / ZIP).stat().st_size / expected - 1) < 0.10
