"""SKY_MODEL=MIGHTEE_L1: the survey downloaded once into a cache, verified, reused; upper-case FITS units.

A MIGHTEE-layout catalogue (9,896 rows, units written in upper case as the survey writes them)
is made here with astropy and served from a real HTTP server on 127.0.0.1; nothing leaves the
machine. The seed's own Job manifest environment (Karabo's k8s/SRCNet_SKA-MID_AAstar/job.yaml)
runs unchanged against that server.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from conftest import run_cli
from srcnet_sim.errors import UserInputError
from srcnet_sim.sizing import human
from srcnet_sim.sky.catalogues import read_catalogue
from srcnet_sim.sky.resolve import load_sky_model
from srcnet_sim.sky import download
from srcnet_sim.sky.download import MAX_DOWNLOAD_BYTES, MIGHTEE_L1_ROWS, cached_path, fetch_mightee_l1, verify

RA0, DEC0 = np.radians(150.12), np.radians(2.21)
ARCSEC = np.pi / 180 / 3600
FILE_NAME = "MIGHTEE_Continuum_Early_Science_COSMOS_Level1_v0.fits"
SRC = Path(__file__).resolve().parents[3] / "src"

# The environment of Karabo's Job manifest for this workflow, verbatim: i4Ds/Karabo-Pipeline
# k8s/SRCNet_SKA-MID_AAstar/job.yaml at commit 48a6fba74607f17555c1d5f15a3e4f370e202bc4
# ("SRCNet AAStar Workflow (#650)", 2025-06-20; unchanged at the repository's head 071e467b).
# Its args: python -m karabo.workflows.SRCNet_SKA-MID_AAstar --dirty --cleaned.
KARABO_JOB_ENV = {
    "SKY_MODEL": "MIGHTEE_L1",
    "PHASE_CENTER_RA_DEG": "150.12",
    "PHASE_CENTER_DEC_DEG": "2.21",
    "START_FREQ_HZ": "1.304e9",
    "END_FREQ_HZ": "1.375e9",
    "FREQ_INC_HZ": "17750000.0",
    "OBS_LENGTH_HOURS": "4.0",
    "NUM_TIME_STAMPS": "24",
    "START_DATE_AND_TIME": "2020-04-26T16:36",
    "IMAGING_NPIXEL": "2024",
    "IMAGING_CELLSIZE": "None",
    "RUCIO_NAMESPACE": "testing",
    "RUCIO_LIFETIME": "31536000",
    "IVOID_AUTHORITY": "test.skao",
    "IVOID_PATH": "/~",
    "OBS_COLLECTION": "SKAO/SKAMID",
    "OBS_ID": "001_SKAMID_Karabo",
    "FILE_PREFIX": "001-SKAMID-Karabo",
    "OUT_DIR": "/ingest/staging",
}


def mightee_hdus(rows: int = MIGHTEE_L1_ROWS, seed: int = 1) -> fits.HDUList:
    """A catalogue in the MIGHTEE Level-1 layout: the survey's columns, its upper-case TUNITs, COSMOS positions.

    IM_MAJ/IM_MIN/IM_PA are in DEG as PyBDSF writes them; S_PEAK in JY/BEAM, S_INT in JY, NU_EFF in HZ.
    """
    rng = np.random.default_rng(seed)
    ra = 150.12 + rng.uniform(-0.7, 0.7, rows)
    dec = 2.21 + rng.uniform(-0.7, 0.7, rows)
    peak = 10 ** rng.uniform(np.log10(20e-6), np.log10(5e-3), rows)
    major = np.where(rng.random(rows) < 0.1, rng.uniform(6, 12, rows), 0.0) / 3600
    columns = [
        fits.Column("NAME", "20A", array=np.array([f"MGTC J{i:06d}" for i in range(rows)])),
        fits.Column("RA", "D", unit="DEG", array=ra),
        fits.Column("DEC", "D", unit="DEG", array=dec),
        fits.Column("S_PEAK", "D", unit="JY/BEAM", array=peak),
        fits.Column("S_INT", "D", unit="JY", array=peak * 1.1),
        fits.Column("NU_EFF", "D", unit="HZ", array=np.full(rows, 1.2818e9)),
        fits.Column("IM_MAJ", "D", unit="DEG", array=major),
        fits.Column("IM_MIN", "D", unit="DEG", array=major / 2),
        fits.Column("IM_PA", "D", unit="DEG", array=rng.uniform(0, 180, rows)),
    ]
    return fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)])


def survey_bytes(tmp_path: Path, rows: int = MIGHTEE_L1_ROWS) -> bytes:
    path = tmp_path / f"made-{rows}.fits"
    mightee_hdus(rows).writeto(path)
    return path.read_bytes()


class SurveyServer:
    """A real HTTP server on 127.0.0.1 serving one body at /surveys/mightee/<FILE_NAME>.

    mode: "ok"; "cut" (announces the whole length, sends half, closes); "404"; "huge"; "slow" (the
    body in 16 pieces over ~2 s, to make concurrent runs overlap). `gets` counts GET requests.
    """

    def __init__(self, body: bytes, mode: str = "ok") -> None:
        self.body, self.mode, self.gets = body, mode, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.gets += 1
                if server.mode == "404" or not self.path.endswith("/" + FILE_NAME):
                    self.send_error(404)
                    return
                self.send_response(200)
                if server.mode == "huge":  # announces more than any catalogue, sends nothing
                    self.send_header("Content-Length", str(MAX_DOWNLOAD_BYTES + 1))
                    self.end_headers()
                    return
                self.send_header("Content-Type", "application/fits")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                if server.mode == "cut":
                    self.wfile.write(server.body[: len(server.body) // 2])
                    self.close_connection = True
                    return
                pieces = 16 if server.mode == "slow" else 1
                step = -(-len(server.body) // pieces)
                for start in range(0, len(server.body), step):
                    self.wfile.write(server.body[start:start + step])
                    self.wfile.flush()
                    if server.mode == "slow":
                        time.sleep(0.125)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/surveys/mightee/{FILE_NAME}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(body: bytes, mode: str = "ok") -> SurveyServer:
        servers.append(SurveyServer(body, mode))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/surveys/mightee/{FILE_NAME}"


def cache_listing(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))


# ---- upper-case units (issue 8, item 5) ----

def test_upper_case_units_of_the_survey_are_read(tmp_path: Path):
    path = tmp_path / "mightee.fits"
    mightee_hdus(rows=50).writeto(path)
    table = fits.getdata(path, 1)
    sky = read_catalogue(path)
    np.testing.assert_allclose(sky.ra_rad, np.radians(table["RA"]))
    np.testing.assert_allclose(sky.stokes_i_jy, table["S_PEAK"])  # JY/BEAM peak taken as Jy, as the seed does
    np.testing.assert_allclose(sky.ref_freq_hz, 1.2818e9)
    # IM_MAJ in DEG: 1 deg = 3600 arcsec.
    np.testing.assert_allclose(sky.major_fwhm_rad, np.radians(table["IM_MAJ"]), rtol=1e-12)
    np.testing.assert_allclose(sky.position_angle_rad, np.radians(table["IM_PA"]))


@pytest.mark.parametrize("column, unit, value, expected", [
    ("NU_EFF", "MHZ", 1281.8, 1.2818e9),
    ("NU_EFF", "GHz", 1.2818, 1.2818e9),
    ("S_PEAK", "mJy/beam", 2.0, 2e-3),
    ("S_PEAK", "uJy", 50.0, 50e-6),
    ("IM_MAJ", "ARCSEC", 6.0, 6.0),
    ("IM_MAJ", "arcmin", 0.1, 6.0),
])
def test_units_are_converted(tmp_path: Path, column, unit, value, expected):
    hdus = mightee_hdus(rows=3)
    hdus[1].data[column] = value
    hdus[1].columns[column].unit = unit
    path = tmp_path / "m.fits"
    hdus.writeto(path)
    sky = read_catalogue(path)
    got = {"NU_EFF": sky.ref_freq_hz, "S_PEAK": sky.stokes_i_jy, "IM_MAJ": sky.major_fwhm_rad / ARCSEC}[column]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("column, unit, message", [
    ("S_PEAK", "FURLONG", "column S_PEAK has the unknown unit 'FURLONG'"),
    ("NU_EFF", "MJY", "column NU_EFF has the unknown unit 'MJY'"),  # mJy or MJy: ambiguous in upper case
    ("RA", "JY", "column RA has the unit 'Jy', which is not a angle"),
    ("NU_EFF", "DEG", "column NU_EFF has the unit 'deg', which is not a frequency"),
])
def test_unknown_or_wrong_unit_is_one_line_naming_the_column(tmp_path: Path, column, unit, message):
    hdus = mightee_hdus(rows=3)
    hdus[1].columns[column].unit = unit
    path = tmp_path / "m.fits"
    hdus.writeto(path)
    with pytest.raises(UserInputError, match="^SKY_MODEL: ") as info:
        read_catalogue(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_fits_without_a_table_is_one_line(tmp_path: Path):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(path)
    with pytest.raises(UserInputError, match=r"^SKY_MODEL: .*image\.fits holds no FITS table extension$"):
        read_catalogue(path)


def test_unknown_unit_from_the_cli_exits_2(tmp_path: Path, out_dir: Path):
    hdus = mightee_hdus(rows=3)
    hdus[1].columns["S_PEAK"].unit = "FURLONG"
    path = tmp_path / "m.fits"
    hdus.writeto(path)
    result = run_cli(["run", "--vis"], env={"SKY_MODEL": "MIGHTEE_L1", "SKY_MODEL_PATH": str(path),
                                            "OUT_DIR": str(out_dir), "TELESCOPE": "SKA-MID-AA0.5"})
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "S_PEAK" in errors[0] and "Traceback" not in result.stderr
    assert list(out_dir.iterdir()) == []


# ---- download and cache ----

def test_first_run_downloads_second_uses_the_cache_offline(tmp_path: Path, serve):
    body = survey_bytes(tmp_path)
    server = serve(body)
    cache = tmp_path / "cache"
    path = fetch_mightee_l1(str(cache), server.url)
    assert path == cached_path(cache, server.url) and path.read_bytes() == body
    assert server.gets == 1
    assert cache_listing(cache) == ["surveys", f"surveys/{FILE_NAME}", f"surveys/{FILE_NAME}.lock"]
    server.stop()
    # Offline now: the cached copy is verified and used.
    again = fetch_mightee_l1(str(cache), server.url)
    assert again == path and server.gets == 1
    sky = load_sky_model("MIGHTEE_L1", None, RA0, DEC0, np.radians(3.0), 0, 0, cache_dir=str(cache), mightee_url=server.url)
    assert len(sky) == MIGHTEE_L1_ROWS


def test_sky_model_path_wins_and_needs_no_network(tmp_path: Path):
    path = tmp_path / "mine.fits"
    mightee_hdus(rows=20).writeto(path)
    cache = tmp_path / "cache"
    sky = load_sky_model("MIGHTEE_L1", str(path), RA0, DEC0, np.radians(3.0), 0, 0, cache_dir=str(cache), mightee_url=closed_port_url())
    assert len(sky) == 20 and not cache.exists()


def test_damaged_cached_copy_is_downloaded_again(tmp_path: Path, serve):
    body = survey_bytes(tmp_path)
    server = serve(body)
    cache = tmp_path / "cache"
    path = fetch_mightee_l1(str(cache), server.url)
    path.write_bytes(body[:2880 * 3])  # damaged on the volume
    assert fetch_mightee_l1(str(cache), server.url).read_bytes() == body
    assert server.gets == 2


@pytest.mark.parametrize("case, message", [
    ("refused", "Connection refused"),
    ("404", "the server answered HTTP 404"),
    ("cut", "the transfer ended after"),
    ("truncated file", "is truncated"),
    ("too few rows", f"holds 100 rows, the MIGHTEE Level-1 catalogue {MIGHTEE_L1_ROWS}"),
    ("not FITS", "is not a complete FITS file"),
    ("other columns", "lacks the MIGHTEE Level-1 columns"),
    ("huge", "not a catalogue of a few MB"),
])
def test_failed_download_is_one_line_and_leaves_nothing(tmp_path: Path, serve, case, message):
    good = survey_bytes(tmp_path)
    if case == "refused":
        url = closed_port_url()
    else:
        body = {"404": good, "cut": good, "truncated file": good[: len(good) - 2880],
                "too few rows": survey_bytes(tmp_path, rows=100), "not FITS": b"<html>Access denied</html>\n",
                "other columns": _other_table(tmp_path), "huge": b""}[case]
        url = serve(body, {"404": "404", "cut": "cut", "huge": "huge"}.get(case, "ok")).url
    cache = tmp_path / "cache"
    with pytest.raises(UserInputError) as info:
        fetch_mightee_l1(str(cache), url)
    text = str(info.value)
    assert text.startswith("MIGHTEE_L1_URL: cannot download the MIGHTEE Level-1 catalogue from " + url)
    assert message in text and "SKY_MODEL_PATH" in text and "\n" not in text
    assert cache_listing(cache) == ["surveys", f"surveys/{FILE_NAME}.lock"]  # no partial file, nothing cached


def _other_table(tmp_path: Path) -> bytes:
    path = tmp_path / "other.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("X", "D", array=np.zeros(MIGHTEE_L1_ROWS))])]).writeto(path)
    return path.read_bytes()


def test_full_cache_volume_is_refused_before_the_transfer(tmp_path: Path, serve, monkeypatch):
    """The free space of the cache's filesystem against the announced size (a full volume cannot be made here:
    its free-space figure is replaced, the real server and transfer are used)."""
    body = survey_bytes(tmp_path)
    server = serve(body)
    monkeypatch.setattr(download, "free_bytes", lambda path: len(body))  # less than body + margin
    cache = tmp_path / "cache"
    with pytest.raises(UserInputError, match=r"^SKY_MODEL_CACHE: .* has 818\.4 KiB free but the MIGHTEE catalogue needs"):
        fetch_mightee_l1(str(cache), server.url)
    assert cache_listing(cache) == ["surveys", f"surveys/{FILE_NAME}.lock"]


def test_progress_of_a_slow_download_is_logged(tmp_path: Path, serve, monkeypatch):
    import logging

    body = survey_bytes(tmp_path)
    server = serve(body, "slow")
    monkeypatch.setattr(download, "PROGRESS_EVERY_S", 0.5)
    monkeypatch.setattr(download, "CHUNK_BYTES", 16 * 1024)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("srcnet_sim")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        fetch_mightee_l1(str(tmp_path / "cache"), server.url)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    progress = [line for line in lines if line.startswith("sky: download ") and " % (" in line]
    assert 2 <= len(progress) <= 8, lines  # ~2 s at most one line per 0.5 s
    assert progress[0].endswith("/s)") and f"of {human(len(body))}" in progress[0]


def test_unwritable_cache_is_one_line_naming_sky_model_cache(tmp_path: Path, serve):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserInputError, match="^SKY_MODEL_CACHE: cannot use .* SKY_MODEL_PATH"):
        fetch_mightee_l1(str(blocker / "cache"), serve(b"").url)


def test_leftover_partial_download_of_a_dead_run_is_removed_and_never_used(tmp_path: Path, serve):
    body = survey_bytes(tmp_path)
    server = serve(body)
    cache = tmp_path / "cache"
    (cache / "surveys").mkdir(parents=True)
    leftover = cache / "surveys" / f".{FILE_NAME}.dead1234.part"
    leftover.write_bytes(body[:2880 * 4])
    assert fetch_mightee_l1(str(cache), server.url).read_bytes() == body
    assert not leftover.exists() and server.gets == 1


def test_two_runs_at_once_leave_one_good_copy(tmp_path: Path, serve):
    body = survey_bytes(tmp_path)
    server = serve(body, "slow")
    cache = tmp_path / "cache"
    code = ("import sys; from srcnet_sim.progress import configure_logging; configure_logging(); "
            "from srcnet_sim.sky.download import fetch_mightee_l1; print(fetch_mightee_l1(sys.argv[1], sys.argv[2]))")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(cache), server.url], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert [r[0] for r in results] == [0, 0], results
    paths = {r[1].strip() for r in results}
    assert paths == {str(cached_path(cache, server.url))}
    assert server.gets == 1  # the second run waited for the first one's copy
    assert any("another run is downloading" in r[2] for r in results), results
    assert cache_listing(cache) == ["surveys", f"surveys/{FILE_NAME}", f"surveys/{FILE_NAME}.lock"]
    assert verify(Path(paths.pop()), "cached") is None


def test_cli_without_network_stops_before_compute_with_one_line(tmp_path: Path, out_dir: Path):
    env = {"SKY_MODEL": "MIGHTEE_L1", "MIGHTEE_L1_URL": closed_port_url(), "SKY_MODEL_CACHE": str(tmp_path / "cache"),
           "OUT_DIR": str(out_dir), "TELESCOPE": "SKA-MID-AA0.5"}
    result = run_cli(["run", "--vis"], env=env)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("srcnet-sim: error: MIGHTEE_L1_URL: cannot download")
    assert "SKY_MODEL_PATH" in errors[0] and "Traceback" not in result.stderr
    assert "simulate" not in result.stderr
    assert list(out_dir.iterdir()) == []


def test_url_setting_is_validated(tmp_path: Path):
    result = run_cli(["estimate"], env={"SKY_MODEL": "MIGHTEE_L1", "MIGHTEE_L1_URL": "file:///etc/passwd"})
    assert result.returncode == 2 and result.stderr.startswith("srcnet-sim: error: MIGHTEE_L1_URL: must be the http(s) URL")
    with pytest.raises(UserInputError, match="^MIGHTEE_L1_URL: .* names no file"):
        cached_path(tmp_path, "http://127.0.0.1:1/surveys/..")


def test_estimate_reports_the_download_and_its_cache(tmp_path: Path, serve):
    server = serve(survey_bytes(tmp_path))
    cache = tmp_path / "cache"
    env = {"SKY_MODEL": "MIGHTEE_L1", "MIGHTEE_L1_URL": server.url, "SKY_MODEL_CACHE": str(cache)}
    result = run_cli(["estimate", "--k8s"], env=env)
    assert result.returncode == 0, result.stderr
    size = cached_path(cache, server.url).stat().st_size
    assert f"sky catalogue           {cached_path(cache, server.url)} ({human(size)}, downloaded once" in result.stdout
    assert "free in SKY_MODEL_CACHE" in result.stdout
    assert f"sources                 {MIGHTEE_L1_ROWS}" in result.stdout


def test_k8s_manifest_puts_the_cache_on_scratch_and_allows_the_download(tmp_path: Path, serve):
    server = serve(survey_bytes(tmp_path))
    env = {"SKY_MODEL": "MIGHTEE_L1", "MIGHTEE_L1_URL": server.url, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    for args in (["k8s-manifest"], ["k8s-manifest", "--cronjob", "0 * * * *"]):
        result = run_cli(args, env=env)
        assert result.returncode == 0, result.stderr
        doc = yaml.safe_load(result.stdout)
        spec = doc["spec"]["template"] if doc["kind"] == "Job" else doc["spec"]["jobTemplate"]["spec"]["template"]
        container = spec["spec"]["containers"][0]
        env_values = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert env_values["SKY_MODEL_CACHE"].startswith("/scratch/") and mounts["/scratch"] == "temporal-scratch"
        assert spec["metadata"]["labels"]["srcnet.skao.int/egress"] == "sky-download"
    # The committed policies: deny-all for every workflow pod, HTTPS egress for the labelled ones.
    policies = [d for d in yaml.safe_load_all((SRC.parent / "deploy" / "k8s" / "networkpolicy.yaml").read_text()) if d]
    allow = next(p for p in policies if p["metadata"]["name"] == "srcnet-sim-sky-download")
    assert allow["spec"]["podSelector"]["matchLabels"]["srcnet.skao.int/egress"] == "sky-download"
    assert {"protocol": "TCP", "port": 443} in [port for rule in allow["spec"]["egress"] for port in rule["ports"]]


def test_karabo_job_manifest_runs_unchanged_to_staged_products(tmp_path: Path, out_dir: Path, serve):
    """The seed's Job environment verbatim (OUT_DIR: the mount point /ingest/staging does not exist here;
    MIGHTEE_L1_URL: the loopback server; XDG_CACHE_HOME: a fresh user cache), the seed's command line."""
    server = serve(survey_bytes(tmp_path))
    env = {**KARABO_JOB_ENV, "OUT_DIR": str(out_dir), "MIGHTEE_L1_URL": server.url,
           "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(SRC)}
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "OPENBLAS_CORETYPE")}
    result = subprocess.run([sys.executable, "-m", "srcnet_sim.workflows.aastar", "--dirty", "--cleaned"],
                            env={**base, **env}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    staged = sorted(p.name for p in (out_dir / "testing").iterdir())
    for name in ("001-SKAMID-Karabodirty.fits", "001-SKAMID-Karabocleaned.fits"):
        assert name in staged and name + ".meta" in staged
    assert "001-SKAMID-Karabomeasurements.ms.tar" not in staged  # --vis was not asked for
    assert server.gets == 1 and (tmp_path / "xdg" / "srcnet-sim" / "surveys" / FILE_NAME).is_file()
    with fits.open(out_dir / "testing" / "001-SKAMID-Karabocleaned.fits") as image:
        assert image[0].header["NAXIS1"] == 2024
