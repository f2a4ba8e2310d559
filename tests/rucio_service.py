"""A real Rucio server for the tests: PostgreSQL (Debian) on loopback, the `rucio` server package from
PyPI (in .rucio-venv, made by scripts/test.sh) under gunicorn, the JSON metadata plugin and a POSIX
RSE in a temporary directory. Traces need a message broker, so uploads run with tracing off."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUCIO_VENV = Path(os.environ.get("SRCNET_SIM_RUCIO_VENV", REPO / ".rucio-venv"))
RSE = "SRCNET_POSIX"


@dataclass
class RucioService:
    client_config: Path
    rse: str
    rse_dir: Path
    url: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start(root: Path) -> tuple[RucioService, list]:
    """Start PostgreSQL and Rucio under `root`; returns the service and what to stop."""
    server_python = RUCIO_VENV / "bin" / "python"
    assert server_python.exists(), f"no Rucio server in {RUCIO_VENV}: bash scripts/test.sh installs it"
    pg_bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert pg_bins, "PostgreSQL is not installed (Debian package postgresql): bash scripts/test.sh installs it"
    pg = pg_bins[-1].parent
    for sub in ("pg", "sock", "log", "rse"):
        (root / sub).mkdir(parents=True)
    if os.geteuid() == 0:
        for sub in ("pg", "sock", "log"):
            shutil.chown(root / sub, "postgres")
    pg_port, http_port = free_port(), free_port()
    stop: list = []
    run = lambda cmd: subprocess.run(cmd, check=True, capture_output=True, timeout=120)  # noqa: E731
    run(_as_postgres([str(pg / "initdb"), "-D", str(root / "pg"), "-U", "postgres", "--auth=trust", "-E", "UTF8"]))
    run(_as_postgres([str(pg / "pg_ctl"), "-D", str(root / "pg"), "-l", str(root / "log" / "pg.log"), "-w", "-o",
                      f"-p {pg_port} -k {root / 'sock'} -c listen_addresses=127.0.0.1", "start"]))
    stop.append(lambda: subprocess.run(_as_postgres([str(pg / "pg_ctl"), "-D", str(root / "pg"), "-m", "fast", "stop"]),
                                       capture_output=True, timeout=60))
    run(_as_postgres([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "rucio"]))
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/rucio"
    url = f"http://127.0.0.1:{http_port}"
    site = subprocess.run([str(server_python), "-c", "import rucio, os; print(os.path.dirname(rucio.__file__))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (root / "alembic.ini").write_text(
        f"[alembic]\nscript_location = {site}/db/sqla/migrate_repo\nsqlalchemy.url = {db_url}\n\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n[handler_console]\nclass = StreamHandler\n"
        "args = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n[formatter_generic]\nformat = %(message)s\n")
    client_section = (f"[client]\nrucio_host = {url}\nauth_host = {url}\nauth_type = userpass\nusername = ddmlab\n"
                      "password = secret\naccount = root\nrequest_retries = 1\n")
    server_config = root / "rucio-server.cfg"
    server_config.write_text(
        f"[common]\nlogdir = {root / 'log'}\nloglevel = WARNING\n[database]\ndefault = {db_url}\n"
        f"[alembic]\ncfg = {root / 'alembic.ini'}\n[bootstrap]\nuserpass_identity = ddmlab\nuserpass_pwd = secret\n"
        "[policy]\npermission = generic\nschema = generic\nlfn2pfn_algorithm_default = hash\nsupport = test\n"
        "support_rucio = test\n[metadata]\nplugins = rucio.core.did_meta_plugins.json_meta.JSONDidMeta\n" + client_section)
    client_config = root / "rucio.cfg"
    client_config.write_text(client_section + "[policy]\npermission = generic\nschema = generic\n")
    server_env = {**os.environ, "RUCIO_CONFIG": str(server_config)}
    server_env.pop("RUCIO_CLIENT_MODE", None)
    subprocess.run([str(server_python), "-c", "from rucio.db.sqla.util import build_database, create_base_vo, "
                    "create_root_account; build_database(); create_base_vo(); create_root_account()"],
                   check=True, capture_output=True, env=server_env, timeout=300)
    log = open(root / "log" / "server.log", "w")
    server = subprocess.Popen([str(RUCIO_VENV / "bin" / "gunicorn"), "-b", f"127.0.0.1:{http_port}", "-w", "2",
                               "--timeout", "120", "rucio.web.rest.flaskapi.v1.main:application"],
                              env=server_env, stdout=log, stderr=subprocess.STDOUT)
    stop.insert(0, lambda: (server.terminate(), server.wait(30), log.close()))
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError as exc:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the Rucio server did not start: {(root / 'log' / 'server.log').read_text()[-3000:]}") from exc
            time.sleep(0.5)
    service = RucioService(client_config=client_config, rse=RSE, rse_dir=root / "rse", url=url)
    return service, stop


def configure(service: RucioService, scope: str) -> None:
    """Create the POSIX RSE, an unlimited quota for root, and the scope."""
    os.environ["RUCIO_CONFIG"] = str(service.client_config)
    os.environ["RUCIO_CLIENT_MODE"] = "1"
    from rucio.client import Client

    client = Client()
    client.add_rse(service.rse)
    client.add_protocol(service.rse, {
        "scheme": "file", "hostname": "localhost", "port": 0, "prefix": str(service.rse_dir),
        "impl": "rucio.rse.protocols.posix.Default",
        "domains": {"lan": {"read": 1, "write": 1, "delete": 1},
                    "wan": {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1, "third_party_copy_write": 1}},
    })
    client.set_local_account_limit("root", service.rse, -1)
    client.add_scope("root", scope)
