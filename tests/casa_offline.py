"""CASA 6 (casatools/casatasks from PyPI) run offline, for the tests that check our products with it.

A temporary HOME holds ~/.casa/config.py pointing `measurespath` at the casadata package's data and switching
every auto-update off, so nothing touches the network or the user's home. Each CASA call runs in its own Python
process with a timeout (a CASA failure can end the process with SIGSEGV rather than an exception).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CASA_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def casa_home(tmp_path_factory) -> Path:
    """A HOME whose ~/.casa/config.py makes CASA use casadata's tables and never update them."""
    missing = [name for name in ("casatools", "casatasks", "casadata") if importlib.util.find_spec(name) is None]
    assert not missing, (f"CASA packages {missing} are not installed: `pip install -e '.[test]'` "
                         "(the README's test command, scripts/test.sh) installs them from PyPI")
    import casadata

    home = tmp_path_factory.mktemp("casa_home")
    (home / ".casa").mkdir()
    (home / ".casa" / "config.py").write_text(textwrap.dedent(f"""\
        measurespath = {casadata.datapath!r}
        measures_auto_update = False
        data_auto_update = False
        """))
    return home


def run_casa(home: Path, code: str, cwd: Path) -> dict:
    """Run CASA code in a fresh Python with HOME=home, in cwd (where CASA writes its casa-*.log); the code prints
    one JSON line last, returned here."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR", "PYTHONPATH")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**env, "HOME": str(home)}, cwd=cwd,
                            capture_output=True, text=True, timeout=CASA_TIMEOUT_S)
    assert result.returncode == 0, f"CASA exited with {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])
