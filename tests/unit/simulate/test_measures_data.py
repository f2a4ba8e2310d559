"""casacore's measures tables: current ones chosen, checked against independent sources, and quiet at any date.

The leap seconds casacore applies with the chosen TAI_UTC are compared with ERFA's own table (pyerfa), and
its UT1-UTC with IERS Bulletin A as astropy reads and interpolates it. Each runs in a fresh process: casacore
reads its resource files once per process, so one that has opened any table keeps the tables it found then.
The run's stderr is checked at today's date and, with libfaketime, three years later (when every table
installed today is older than casacore's 180 days): never a SEVERE line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from casacore.tables import table

from conftest import run_cli, unpack_ms
from srcnet_sim.simulate import measures_data

TINY = {"SYNTHETIC_SOURCES": "10", "NUM_TIME_STAMPS": "2", "TELESCOPE": "SKA-MID-AA0.5"}

LEAP_SECONDS = """
import json, warnings
import erfa, numpy as np
from casacore.measures import measures
from casacore.quanta import quantity
from srcnet_sim.simulate import measures_data
tables = measures_data.current()
dm = measures()
worst, n = 0.0, 0
for mjd in np.arange(37665.0, (tables.leap_seconds_until - measures_data.MJD_EPOCH).days, 7.3):
    tai = dm.measure(dm.epoch("utc", quantity(mjd, "d")), "tai")["m0"]["value"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        y, m, d, fd = erfa.jd2cal(2400000.5, mjd)
        reference = erfa.dat(y, m, d, fd)
    worst, n = max(worst, abs((tai - mjd) * 86400.0 - reference)), n + 1
print(json.dumps({"worst_s": worst, "n": n, "sources": tables.sources}))
"""

UT1 = """
import json
import numpy as np
from astropy.time import Time
from astropy.utils.iers import IERS_A
import astropy_iers_data
from casacore.measures import measures
from casacore.quanta import quantity
from srcnet_sim.simulate import measures_data
tables = measures_data.current()
first = (tables.measured_until - measures_data.MJD_EPOCH).days + 10
last = (tables.predict_until - measures_data.MJD_EPOCH).days - 1
mjd = np.linspace(first, last, 97) + 0.37
dm = measures()
ours = np.array([(dm.measure(dm.epoch("utc", quantity(t, "d")), "ut1")["m0"]["value"] - t) * 86400.0 for t in mjd])
bulletin_a = IERS_A.read(astropy_iers_data.IERS_A_FILE)
reference = bulletin_a.ut1_utc(Time(mjd, format="mjd", scale="utc")).to_value("s")
print(json.dumps({"worst_s": float(np.max(np.abs(ours - reference))), "n": len(mjd), "sources": tables.sources,
                  "range": [float(mjd[0]), float(mjd[-1])]}))
"""


def _fresh_process(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "SEVERE" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def test_leap_seconds_are_erfa_s_from_1962_to_the_tables_validity():
    result = _fresh_process(LEAP_SECONDS)
    assert result["sources"][0].startswith("TAI_UTC from astropy-iers-data"), result["sources"]
    assert result["n"] > 3000
    assert result["worst_s"] < 1e-6, result  # the 1962-1972 rates included


def test_ut1_is_iers_bulletin_a_where_the_measured_table_ends():
    """Past the measured series (python-casacore's IERSeop97) casacore reads IERSpredict: built from Bulletin A."""
    result = _fresh_process(UT1)
    assert result["sources"][1].startswith("IERSpredict from astropy-iers-data"), result["sources"]
    assert result["range"][1] > result["range"][0] + 100
    assert result["worst_s"] < 2e-6, result  # both interpolate the daily values linearly


def _tables(leap_until: date, predict_until: date) -> measures_data.MeasuresTables:
    here = Path(".")
    return measures_data.MeasuresTables(here, here, here, date(2026, 1, 1), leap_until, predict_until,
                                        date(2026, 1, 1), ())


def test_the_notice_names_what_is_extrapolated():
    tables = _tables(date(2027, 6, 28), date(2027, 11, 12))
    start = datetime(2020, 4, 26, 16, 36, tzinfo=timezone.utc)
    assert measures_data.coverage_notice(start.replace(hour=20), tables) is None
    leap = measures_data.coverage_notice(datetime(2027, 7, 1, tzinfo=timezone.utc), tables)
    assert "leap seconds are known to 2027-06-28" in leap and "UT1-UTC" not in leap
    both = measures_data.coverage_notice(datetime(2040, 1, 1, 4, tzinfo=timezone.utc), tables)
    assert both.startswith("START_DATE_AND_TIME: the observation ends 2040-01-01T04:00 UTC")
    assert "leap seconds are known to 2027-06-28" in both and "predicted to 2027-11-12" in both


def test_leap_second_file_parsing():
    text = ("#  File expires on 28 June 2027\n#    MJD        Date        TAI-UTC (s)\n"
            "    41317.0    1  1 1972       10\n    57754.0    1  1 2017       37\n")
    assert measures_data.leap_second_expiry(text) == date(2027, 6, 28)
    assert measures_data.leap_seconds(text) == [(41317.0, 10.0), (57754.0, 37.0)]


def _run_without_severe(tmp_path: Path, prefix: list[str]) -> Path:
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    env = {**TINY, "OUT_DIR": str(out), "TMPDIR": str(scratch)}
    if prefix:
        done = subprocess.run([*prefix, sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], capture_output=True,
                              text=True, timeout=600, env={**_base_env(), **env}, check=False)
    else:
        done = run_cli(["run", "--vis"], env=env)
    assert done.returncode == 0, done.stderr
    assert "SEVERE" not in done.stderr and "WARN" not in done.stderr, done.stderr
    return unpack_ms(out / "testing" / "measurements.ms.tar", tmp_path / "ms")


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "OPENBLAS_CORETYPE")}


def test_a_run_prints_no_severe_line_and_records_its_tables(tmp_path: Path):
    ms = _run_without_severe(tmp_path, [])
    with table(str(ms / "HISTORY"), ack=False) as history:
        messages = list(history.getcol("MESSAGE"))
    recorded = [m for m in messages if m.startswith("measures ")]
    assert [m.split(" from ")[0] for m in recorded] == ["measures TAI_UTC", "measures IERSpredict", "measures IERSeop97"]
    assert all(Path(m.split("(")[1].split(",")[0]).is_dir() for m in recorded), recorded


def test_three_years_on_the_run_is_still_quiet(tmp_path: Path):
    """libfaketime moves the clock (casacore's too) 3 years on: every table is then 'out-of-date' to casacore."""
    moved = subprocess.run(["faketime", "-f", "+3y", sys.executable, "-c",
                            "import datetime, json; from srcnet_sim.simulate import measures_data as m; "
                            "print(json.dumps([datetime.date.today().isoformat(), m.current().tai_utc_date.isoformat()]))"],
                           capture_output=True, text=True, timeout=300, env=_base_env(), check=False)
    assert moved.returncode == 0 and "SEVERE" not in moved.stderr, moved.stderr
    today, tai_utc_date = (date.fromisoformat(d) for d in json.loads(moved.stdout))
    assert (today - tai_utc_date).days > measures_data.CASACORE_STALE_DAYS  # casacore would say SEVERE
    _run_without_severe(tmp_path, ["faketime", "-f", "+3y"])
