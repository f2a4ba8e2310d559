"""End to end against a real Rucio (PostgreSQL, JSON metadata, POSIX RSE): run, stage, ingest, check."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

import rucio_service
from conftest import run_cli

SMALL = {"TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "3", "SYNTHETIC_SOURCES": "50", "IMAGING_NPIXEL": "128",
         "OBS_ID": "obs-e2e-1"}


@pytest.fixture(scope="module")
def rucio():
    # Not under pytest's tmp_path: PostgreSQL runs as the postgres user, who cannot enter root's private dirs.
    root = Path(tempfile.mkdtemp(prefix="srcnet-sim-rucio-"))
    root.chmod(0o755)
    stop = []
    try:
        service, stop = rucio_service.start(root)
        rucio_service.configure(service, "testing")
        yield service
    finally:
        for action in stop:
            action()
        shutil.rmtree(root, ignore_errors=True)


def client():
    from rucio.client import Client

    return Client()


def ingest(rucio, staging: Path, config: Path | None = None):
    return run_cli(["ingest", str(staging), "--rse", rucio.rse, "--attempts", "2", "--backoff", "0.2"],
                   env={"RUCIO_CONFIG": str(config or rucio.client_config), "RUCIO_CLIENT_MODE": "1"})


@pytest.fixture(scope="module")
def ingested(rucio, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = run_cli(["run", "--vis", "--dirty", "--clean"], env={"OUT_DIR": str(out), **SMALL})
    assert result.returncode == 0, result.stderr
    staging = out / "testing"
    sidecars = {p.name[: -len(".meta")]: json.loads(p.read_text()) for p in staging.glob("*.meta")}
    assert sorted(sidecars) == ["cleaned.fits", "dirty.fits", "measurements.ms.tar"]
    result = ingest(rucio, staging)
    assert result.returncode == 0, result.stderr
    return out, sidecars


def test_every_did_exists_with_its_metadata_and_checksum(ingested):
    from rucio.common.checksum import adler32

    out, sidecars = ingested
    c = client()
    for name, document in sidecars.items():
        did = c.get_did("testing", name)
        assert did["type"].upper() == "FILE"
        assert c.get_metadata("testing", name, plugin="JSON") == document["meta"]
        assert c.get_metadata("testing", name)["adler32"] == adler32(str(out / "done" / "testing" / name))
        replicas = list(c.list_replicas([{"scope": "testing", "name": name}]))
        assert replicas and replicas[0]["rses"]


def test_products_form_the_observation_dataset(ingested):
    names = sorted(d["name"] for d in client().list_content("testing", "obs-e2e-1"))
    assert names == ["cleaned.fits", "dirty.fits", "measurements.ms.tar"]


def test_pairs_left_the_staging_area(ingested):
    out, _ = ingested
    assert not list((out / "testing").glob("*.meta"))
    assert len(list((out / "done" / "testing").glob("*.meta"))) == 3


def test_second_ingest_changes_nothing(rucio, ingested):
    out, _ = ingested
    before = sorted(client().list_dids("testing", {}, did_type="all"))
    result = ingest(rucio, out / "testing")
    assert result.returncode == 0 and "ingested 0, failed 0" in result.stdout
    assert sorted(client().list_dids("testing", {}, did_type="all")) == before


def test_pair_put_back_after_a_crash_is_ingested_again_harmlessly(rucio, ingested):
    """A crash after the upload but before the move leaves the pair staged: the re-run finds the DID
    with the same checksum, sets the metadata again and moves the pair."""
    out, _ = ingested
    done, staging = out / "done" / "testing", out / "testing"
    for name in ("dirty.fits", "dirty.fits.meta"):
        shutil.move(str(done / name), str(staging / name))
    result = ingest(rucio, staging)
    assert result.returncode == 0 and "ingested 1, failed 0" in result.stdout
    assert (done / "dirty.fits.meta").exists() and not (staging / "dirty.fits.meta").exists()


def test_malformed_meta_goes_to_failed_with_its_reason(rucio, ingested, tmp_path):
    out, sidecars = ingested
    staging = tmp_path / "testing"
    staging.mkdir()
    source = out / "done" / "testing" / "cleaned.fits"
    shutil.copy(source, staging / "broken.fits")
    (staging / "broken.fits.meta").write_text("{not json")
    shutil.copy(source, staging / "good_copy.fits")
    good = json.loads(json.dumps(sidecars["cleaned.fits"]))
    good["name"] = "good_copy.fits"
    (staging / "good_copy.fits.meta").write_text(json.dumps(good))
    result = ingest(rucio, staging)
    assert result.returncode == 1 and "ingested 1, failed 1" in result.stdout
    failed = tmp_path / "failed" / "testing"
    assert sorted(p.name for p in failed.iterdir()) == ["broken.fits", "broken.fits.meta", "broken.fits.reason"]
    assert "is not valid JSON" in (failed / "broken.fits.reason").read_text()
    assert client().get_did("testing", "good_copy.fits")


def test_unreachable_rucio_on_a_fresh_machine_retries_then_exits_3(tmp_path):
    """No Rucio at the address and no token cached yet (its own token file): the login itself must be retried."""
    staging = tmp_path / "testing"
    staging.mkdir()
    (staging / "x.fits").write_bytes(b"0" * 10)
    (staging / "x.fits.meta").write_text("{}")
    url = f"http://127.0.0.1:{rucio_service.free_port()}"
    config = tmp_path / "rucio.cfg"
    config.write_text(f"[client]\nrucio_host = {url}\nauth_host = {url}\nauth_type = userpass\nusername = ddmlab\n"
                      f"password = secret\naccount = root\nrequest_retries = 1\n"
                      f"auth_token_file_path = {tmp_path / 'fresh-token-dir' / 'token'}\n"
                      "[policy]\npermission = generic\nschema = generic\n")
    result = run_cli(["ingest", str(staging), "--rse", "ANY", "--attempts", "3", "--backoff", "0.1"],
                     env={"RUCIO_CONFIG": str(config), "RUCIO_CLIENT_MODE": "1"})
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("connecting to Rucio failed (ServerConnectionException); retrying in") == 2
    assert len(result.stderr.strip().splitlines()) == 3  # the two retries and the error: the client's own logs are quiet
    assert result.stderr.strip().splitlines()[-1].startswith("srcnet-sim: error: Rucio unreachable: connecting to Rucio failed 3 times")
    assert not (tmp_path / "fresh-token-dir" / "token").exists()
    assert sorted(p.name for p in staging.iterdir()) == ["x.fits", "x.fits.meta"]


def test_a_second_failure_under_the_same_name_keeps_the_first(rucio, ingested, tmp_path):
    staging = tmp_path / "testing"
    failed = tmp_path / "failed" / "testing"
    for attempt in ("first", "second"):
        staging.mkdir(exist_ok=True)
        (staging / "twice.fits").write_text(attempt)
        (staging / "twice.fits.meta").write_text("{" + attempt)
        result = ingest(rucio, staging)
        assert result.returncode == 1 and "ingested 0, failed 1" in result.stdout, result.stderr
    assert (failed / "twice.fits").read_text() == "first" and (failed / "twice.fits.meta").read_text() == "{first"
    assert (failed / "2" / "twice.fits").read_text() == "second"
    assert (failed / "2" / "twice.fits.meta").read_text() == "{second"
    assert "is not valid JSON" in (failed / "2" / "twice.fits.reason").read_text()


def test_unreadable_or_linked_sidecars_go_to_failed_and_the_others_are_ingested(rucio, ingested, tmp_path):
    out, sidecars = ingested
    staging = tmp_path / "testing"
    staging.mkdir()
    source = out / "done" / "testing" / "dirty.fits"
    shutil.copy(source, staging / "dir_meta.fits")
    (staging / "dir_meta.fits.meta").mkdir()  # a .meta that is a directory
    outside = tmp_path / "outside.fits"
    shutil.copy(source, outside)
    (staging / "linked.fits").symlink_to(outside)  # a data file planted as a link: never uploaded
    linked = json.loads(json.dumps(sidecars["dirty.fits"]))
    linked["name"] = "linked.fits"
    (staging / "linked.fits.meta").write_text(json.dumps(linked))
    shutil.copy(source, staging / "good_after.fits")
    good = json.loads(json.dumps(sidecars["dirty.fits"]))
    good["name"] = "good_after.fits"
    (staging / "good_after.fits.meta").write_text(json.dumps(good))
    result = ingest(rucio, staging)
    assert result.returncode == 1 and "ingested 1, failed 2" in result.stdout, result.stderr
    failed = tmp_path / "failed" / "testing"
    assert "dir_meta.fits.meta is not a regular file" in (failed / "dir_meta.fits.reason").read_text()
    assert (failed / "dir_meta.fits.meta").is_dir()
    assert "linked.fits is a symbolic link" in (failed / "linked.fits.reason").read_text()
    assert client().get_did("testing", "good_after.fits")
    with pytest.raises(Exception, match="not found|DataIdentifierNotFound"):
        client().get_did("testing", "linked.fits")
