"""The leap-second and Earth-orientation tables behind casacore's measures: current, named, and quiet.

python-casacore ships its measures tables frozen at its release, and casacore logs three SEVERE lines
("Leap second table TAI_UTC seems out-of-date ...") whenever that table is more than 180 days older than
the computer's clock, whatever the dates converted: wrong for a 2020 observation, and no help for a 2040 one.

Here casacore is given, per table, the most recent of
  - the tables shipped with python-casacore (or those of `measures.directory` in the user's casarc files),
  - CASA's casadata package, where it is installed,
  - tables built from astropy-iers-data (a dependency of astropy, released weekly from the IERS files):
    TAI_UTC from its Leap_Second.dat (IERS Bulletin C; the file states until when it is valid), IERSpredict
    from its finals2000A.all (IERS Bulletin A: measured UT1-UTC and polar motion, then a year of predictions).
The built tables are written once per astropy-iers-data release into the user's cache and reused.

casacore's out-of-date notice compares the table with today's clock; what matters is whether the observed
dates lie within the tables. `coverage_notice` says that, and the notice of casacore is taken out of stderr
(every other line it prints passes through). `history_lines` names the tables for the MS HISTORY.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from srcnet_sim.progress import logger

MJD_EPOCH = date(1858, 11, 17)
# casacore's own threshold (MeasTable::calc_dUTC): SEVERE when the clock is this far past the table's VS_DATE.
CASACORE_STALE_DAYS = 180
CASACORE_STALE_NOTICE = ("Leap second table TAI_UTC seems out-of-date", "Until the table is updated",
                         "times and coordinates derived from UTC could be wrong by 1s or more")
LEAP_EXPIRY_PATTERN = re.compile(r"File expires on\s+(\d{1,2})\s+(\w+)\s+(\d{4})")
FIRST_LEAP_SECOND_MJD = 41317.0  # 1972-01-01: integer leap seconds from here on, rates before
BUILT_FORMAT = 2  # the layout of the tables built here; a change rebuilds them

Candidate = tuple[date, float, Path, str]  # (VS_DATE, last MJD, directory, where it comes from)


@dataclass(frozen=True)
class MeasuresTables:
    """The tables casacore uses in this process.

    tai_utc_dir, predict_dir, measured_dir: directories holding TAI_UTC, IERSpredict, IERSeop97.
    tai_utc_date: VS_DATE of TAI_UTC (when its list was last taken from the IERS).
    leap_seconds_until: the last day its leap seconds are known for (Bulletin C's validity).
    predict_until, measured_until: the last day of UT1-UTC and polar motion in IERSpredict and IERSeop97.
    sources: one phrase per table saying where it came from.
    """

    tai_utc_dir: Path
    predict_dir: Path
    measured_dir: Path
    tai_utc_date: date
    leap_seconds_until: date
    predict_until: date
    measured_until: date
    sources: tuple[str, ...]

    @classmethod
    def from_record(cls, record: dict) -> "MeasuresTables":
        """From the JSON-able record `choose` makes (paths and ISO dates as strings)."""
        types = {"tai_utc_dir": Path, "predict_dir": Path, "measured_dir": Path, "sources": tuple}
        return cls(**{key: types.get(key, date.fromisoformat)(value) for key, value in record.items()})


def mjd_to_date(mjd: float) -> date:
    return MJD_EPOCH + timedelta(days=int(mjd))


def _table_facts(directory: Path, name: str) -> tuple[date, float] | None:
    """(VS_DATE, last MJD) of the casacore table `directory/name`, or None where it is not a readable table."""
    from casacore.tables import table

    path = directory / name
    if not (path / "table.dat").is_file():
        return None
    try:
        with table(str(path), ack=False) as t:
            stamp = str(t.getkeyword("VS_DATE"))
            last_mjd = float(t.getcell("MJD", t.nrows() - 1))
    except (RuntimeError, KeyError, ValueError):
        return None
    match = re.match(r"(\d{4})/(\d\d)/(\d\d)", stamp)
    return (date(*map(int, match.groups())) if match else MJD_EPOCH), last_mjd


def _rc_files() -> list[Path]:
    """casacore's resource files in the order it reads them (CASARCFILES, else the home and AIPSPATH ones)."""
    if os.environ.get("CASARCFILES"):
        return [Path(p) for p in os.environ["CASARCFILES"].split(":") if p]
    home = Path.home()
    files = [home / ".casarc", home / ".casa" / "rc", home / ".aipsrc"]
    root = os.environ.get("AIPSPATH", "").split()
    return files + ([Path(root[0]) / ".aipsrc"] if root else [])


def _rc_measures_directory(files: list[Path]) -> Path | None:
    """The first `measures.directory` the resource files set, with environment variables expanded."""
    for path in files:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key.strip() == "measures.directory" and value.strip():
                return Path(os.path.expandvars(value.strip())).expanduser()
    return None


def _shipped_directories() -> list[tuple[Path, str]]:
    """(geodetic directory, description) of the measures data present: casarc's or python-casacore's, casadata's."""
    import casacore  # sets AIPSPATH and CASACORE_DATADIR for its own .aipsrc

    found = []
    configured = _rc_measures_directory(_rc_files())
    bundled = Path(casacore.__file__).parent / "data"
    if configured is not None and configured.resolve() == bundled.resolve():
        configured = None  # python-casacore's own resource file names its data
    for root, what in ((configured, "measures.directory"), (bundled, f"python-casacore {casacore.__version__}")):
        if root is not None and (root / "geodetic").is_dir():
            found.append((root / "geodetic", what))
    spec = importlib.util.find_spec("casadata")
    if spec is not None and spec.submodule_search_locations:
        geodetic = Path(next(iter(spec.submodule_search_locations))) / "__data__" / "geodetic"
        if geodetic.is_dir():
            found.append((geodetic, "casadata"))
    return found


def _iers_data() -> tuple[str, Path, Path] | None:
    """(version, Leap_Second.dat, finals2000A.all) of astropy-iers-data, or None where it is not installed."""
    try:
        import astropy_iers_data
    except ImportError:
        return None
    return astropy_iers_data.__version__, Path(astropy_iers_data.IERS_LEAP_SECOND_FILE), Path(astropy_iers_data.IERS_A_FILE)


def _release_date(version: str) -> date | None:
    """astropy-iers-data's versions are 0.YYYY.MM.DD...: the day its files were taken from the IERS."""
    match = re.match(r"0\.(\d{4})\.(\d{1,2})\.(\d{1,2})", version)
    return date(*map(int, match.groups())) if match else None


def leap_second_expiry(text: str) -> date:
    """The 'File expires on DD Month YYYY' date of an IERS Leap_Second.dat."""
    match = LEAP_EXPIRY_PATTERN.search(text)
    if match is None:
        raise ValueError("Leap_Second.dat states no expiry date")
    return datetime.strptime(" ".join(match.groups()), "%d %B %Y").date()


def leap_seconds(text: str) -> list[tuple[float, float]]:
    """(MJD, TAI-UTC seconds) of each leap second in an IERS Leap_Second.dat."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if fields and not line.lstrip().startswith("#") and len(fields) == 5:
            rows.append((float(fields[0]), float(fields[4])))
    return rows


def _write_table(path: Path, columns: dict[str, tuple[str, list[float]]], keywords: dict, sub_type: str) -> None:
    """A casacore IERS table (the type casacore's MeasIERS requires) of float64 columns {name: (unit, values)}
    with table keywords."""
    import numpy as np
    from casacore.tables import makescacoldesc, maketabdesc, table

    desc = maketabdesc([makescacoldesc(name, 0.0, keywords={"UNIT": unit}) for name, (unit, _) in columns.items()])
    n_rows = len(next(iter(columns.values()))[1])
    with table(str(path), desc, nrow=n_rows, ack=False) as t:
        for name, (_, values) in columns.items():
            t.putcol(name, np.asarray(values, dtype=np.float64))
        t.putkeywords(keywords)
        t.putinfo({"type": "IERS", "subType": sub_type, "readme": "written by srcnet-sim from astropy-iers-data"})


def _build_tai_utc(path: Path, shipped: Path, leap_file: Path, stamp: str) -> None:
    """TAI_UTC: the shipped table's rate-based UTC before 1972, then every leap second Leap_Second.dat lists."""
    from casacore.tables import table

    with table(str(shipped / "TAI_UTC"), ack=False) as old:
        rows = [old[i] for i in range(old.nrows()) if old.getcell("MJD", i) < FIRST_LEAP_SECOND_MJD]
        base_keywords = old.getkeywords()
    rows += [{"MJD": mjd, "dUTC": seconds, "Offset": FIRST_LEAP_SECOND_MJD, "Multiplier": 0.0}
             for mjd, seconds in leap_seconds(leap_file.read_text())]
    units = {"MJD": "d", "dUTC": "s", "Offset": "d", "Multiplier": "s"}
    _write_table(path, {name: (unit, [r[name] for r in rows]) for name, unit in units.items()},
                 {**base_keywords, "VS_DATE": stamp, "VS_CREATE": stamp,
                  "VS_TYPE": "TAI_UTC difference from IERS Leap_Second.dat (astropy-iers-data)"}, "leapSecond")


def _build_predict(path: Path, finals_file: Path, stamp: str) -> None:
    """IERSpredict: daily polar motion and UT1-UTC of finals2000A.all, as astropy combines them: the final values
    (Bulletin B) where given, else Bulletin A's rapid service and then its predictions (uncertainties: A's)."""
    import numpy as np
    from astropy.utils.iers import IERS_A

    finals = IERS_A.read(str(finals_file))
    known = ~np.ma.getmaskarray(finals["UT1_UTC"]) & ~np.ma.getmaskarray(finals["PM_x"])
    rows = finals[known]
    mjd = np.asarray(rows["MJD"], dtype=np.float64)
    if not np.all(np.diff(mjd) == 1.0):
        raise ValueError("finals2000A.all is not one row per day")

    def col(name: str, scale: float = 1.0) -> list[float]:
        return list(np.ma.filled(np.asarray(rows[name], dtype=np.float64), 0.0) * scale)

    zero = [0.0] * len(mjd)
    columns = {"MJD": ("d", list(mjd)), "x": ("arcsec", col("PM_x")), "Dx": ("arcsec", col("e_PM_x_A")),
               "y": ("arcsec", col("PM_y")), "Dy": ("arcsec", col("e_PM_y_A")), "dUT1": ("s", col("UT1_UTC")),
               "DdUT1": ("s", col("e_UT1_UTC_A")), "LOD": ("s", col("LOD_A", 1e-3)), "DLOD": ("s", col("e_LOD_A", 1e-3)),
               "dPsi": ("arcsec", zero), "DdPsi": ("arcsec", zero), "dEps": ("arcsec", zero), "DdEps": ("arcsec", zero)}
    _write_table(path, columns, {"VS_DATE": stamp, "VS_CREATE": stamp, "VS_VERSION": "0001.0000",
                                 "VS_TYPE": "IERS Bulletins B and A (finals2000A.all, astropy-iers-data)",
                                 "TAB_VERSION": "0002.0000", "MJD0": float(mjd[0] - 1.0), "dMJD": 1.0}, "predict")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "srcnet-sim" / "measures"


def _built_tables(shipped: Path) -> tuple[Path, date, date] | None:
    """(directory, VS_DATE, leap-second expiry) of the tables built from astropy-iers-data, building them once;
    None without astropy-iers-data, or where the cache cannot be written."""
    data = _iers_data()
    if data is None:
        return None
    version, leap_file, finals_file = data
    released = _release_date(version)
    if released is None:
        return None
    expiry = leap_second_expiry(leap_file.read_text())
    directory = _cache_root() / f"astropy-iers-data-{version}-v{BUILT_FORMAT}"
    if not (directory / "provenance.json").is_file():
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            building = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
        except OSError as exc:
            logger.debug("measures: cannot write the cache %s (%s); using the shipped tables", directory.parent, exc)
            return None
        try:
            stamp = released.strftime("%Y/%m/%d/00:00")
            _build_tai_utc(building / "TAI_UTC", shipped, leap_file, stamp)
            _build_predict(building / "IERSpredict", finals_file, stamp)
            (building / "provenance.json").write_text(json.dumps(
                {"astropy_iers_data": version, "leap_second_file": str(leap_file), "finals_file": str(finals_file),
                 "leap_seconds_until": expiry.isoformat()}, indent=1))
            os.rename(building, directory)  # another run may have built it first: keep that one
        except OSError:
            pass
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return directory, released, expiry


def choose() -> dict:
    """The tables to use (see the module docstring), building those from astropy-iers-data where needed, as a
    JSON-able record of MeasuresTables' fields. Opens casacore tables, so it runs in a child process of
    `current` (a process that has opened one has read its casarc files for good)."""
    shipped = _shipped_directories()
    if not shipped:
        raise RuntimeError("no casacore measures data found (python-casacore ships it in casacore/data)")
    candidates: dict[str, list[Candidate]] = {"TAI_UTC": [], "IERSpredict": [], "IERSeop97": []}
    for directory, what in shipped:
        for name, found in candidates.items():
            facts = _table_facts(directory, name)
            if facts:
                found.append((facts[0], facts[1], directory, what))
    built = _built_tables(next(directory for directory, _ in shipped if (directory / "TAI_UTC").is_dir()))
    if built is not None:
        for name in ("TAI_UTC", "IERSpredict"):
            facts = _table_facts(built[0], name)
            if facts:
                candidates[name].append((facts[0], facts[1], built[0], "astropy-iers-data"))
    measured = candidates["IERSeop97"][0]
    newest = _record(max(candidates["TAI_UTC"], key=lambda c: c[0]), max(candidates["IERSpredict"], key=lambda c: c[1]),
                     measured, built)
    return {"chosen": newest, "default": _record(candidates["TAI_UTC"][0], candidates["IERSpredict"][0], measured, built)}


def _record(tai: Candidate, predict: Candidate, measured: Candidate, built: tuple[Path, date, date] | None) -> dict:
    """MeasuresTables' fields, JSON-able, for these tables."""
    if built is not None and tai[2] == built[0]:
        leap_until = built[2]
    else:  # a shipped TAI_UTC states no validity: IERS Bulletin C announces leap seconds six months ahead
        leap_until = tai[0] + timedelta(days=CASACORE_STALE_DAYS)
    return {"tai_utc_dir": str(tai[2]), "predict_dir": str(predict[2]), "measured_dir": str(measured[2]),
            "tai_utc_date": tai[0].isoformat(), "leap_seconds_until": leap_until.isoformat(),
            "predict_until": mjd_to_date(predict[1]).isoformat(), "measured_until": mjd_to_date(measured[1]).isoformat(),
            "sources": [f"TAI_UTC from {tai[3]} ({tai[2]}, {tai[0].isoformat()}, leap seconds known to "
                        f"{leap_until.isoformat()})",
                        f"IERSpredict from {predict[3]} ({predict[2]}, to {mjd_to_date(predict[1]).isoformat()})",
                        f"IERSeop97 from {measured[3]} ({measured[2]}, to {mjd_to_date(measured[1]).isoformat()})"]}


def _choice_key() -> str:
    """What the choice depends on: the packages' versions and the user's measures.directory with its tables."""
    from importlib import metadata

    rc_files = _rc_files()
    parts = [str(BUILT_FORMAT), str(rc_files)]
    for package in ("python-casacore", "casadata", "astropy-iers-data"):
        try:
            parts.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package}=none")
    configured = _rc_measures_directory(rc_files)
    if configured is not None:
        for name in ("TAI_UTC", "IERSpredict", "IERSeop97"):
            try:
                parts.append(f"{name}={(configured / 'geodetic' / name / 'table.dat').stat().st_mtime_ns}")
            except OSError:
                parts.append(f"{name}=none")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@functools.cache
def current() -> MeasuresTables:
    """The tables casacore uses in this process, chosen once per set of installed tables (a child process reads
    them, the result is cached as JSON beside the built tables), casacore pointed at them and its leap-second
    table loaded with its out-of-date notice taken out of stderr. Call it before anything in the process opens a
    casacore table or makes a measure: casacore reads its resource files then, once."""
    import casacore  # noqa: F401 - sets AIPSPATH, which names python-casacore's own resource file

    cached = _cache_root() / f"choice-{_choice_key()}.json"
    try:
        record = json.loads(cached.read_text())
    except (OSError, ValueError):
        done = subprocess.run([sys.executable, "-m", __name__], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"choosing casacore's measures tables failed: {done.stderr.strip()}")
        record = json.loads(done.stdout)
        try:
            fd, partial = tempfile.mkstemp(prefix=".choice-", dir=cached.parent)
            with os.fdopen(fd, "w") as handle:
                handle.write(done.stdout)
            os.replace(partial, cached)
        except OSError as exc:
            logger.debug("measures: cannot cache the choice in %s (%s)", cached.parent, exc)
    tables = MeasuresTables.from_record(record["chosen"])
    if not _point_casacore(tables.tai_utc_dir, tables.predict_dir):
        tables = MeasuresTables.from_record(record["default"])  # casacore keeps its own choice
    for line in tables.sources:
        logger.debug("measures: %s", line)
    _load_leap_seconds_quietly()
    return tables


def _point_casacore(tai_utc_dir: Path, predict_dir: Path) -> bool:
    """A resource file naming the chosen directories, read by casacore before the user's own (first wins);
    False where it cannot be written."""
    rc_text = f"measures.tai_utc.directory: {tai_utc_dir}\nmeasures.ierspredict.directory: {predict_dir}\n"
    chain = ":".join(str(p) for p in _rc_files())
    rc_path = _cache_root() / f"casarc-{hashlib.sha256(rc_text.encode()).hexdigest()[:16]}"
    try:
        if not rc_path.is_file():
            rc_path.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(prefix=".casarc-", dir=rc_path.parent, text=True)
            with os.fdopen(fd, "w") as handle:
                handle.write(rc_text)
            os.replace(partial, rc_path)
    except OSError as exc:  # no cache: casacore keeps its own choice, which `current` then reports
        logger.debug("measures: cannot write %s (%s)", rc_path, exc)
        return False
    os.environ["CASARCFILES"] = f"{rc_path}:{chain}"
    return True


def _load_leap_seconds_quietly() -> None:
    """Load casacore's leap-second table (it does so once per process) with its out-of-date notice removed
    from the C++ library's stderr; anything else it prints there is passed on."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            dm = measures()
            dm.measure(dm.epoch("utc", quantity(51544.0, "d")), "tai")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    kept = [line for line in text.splitlines(keepends=True) if not any(part in line for part in CASACORE_STALE_NOTICE)]
    if len(kept) != len(text.splitlines()):
        logger.debug("measures: casacore's notice that TAI_UTC is over %d days old was taken out", CASACORE_STALE_DAYS)
    sys.stderr.write("".join(kept))


def coverage_notice(end: datetime, tables: MeasuresTables) -> str | None:
    """One line saying what is extrapolated where the observation, ending at `end` (UTC), lies past the tables."""
    end_day = end.astimezone(timezone.utc).date()
    parts = []
    if end_day > tables.leap_seconds_until:
        parts.append(f"leap seconds are known to {tables.leap_seconds_until.isoformat()} (TAI-UTC held at its last value)")
    if end_day > tables.predict_until:
        parts.append(f"UT1-UTC and polar motion are predicted to {tables.predict_until.isoformat()} (taken as 0 "
                     "after it: UVW rotated by up to 0.9 s of Earth rotation, 14 arcsec)")
    if not parts:
        return None
    return (f"START_DATE_AND_TIME: the observation ends {end.strftime('%Y-%m-%dT%H:%M')} UTC, past the measures "
            f"tables in use: {'; '.join(parts)}")


def history_lines(tables: MeasuresTables) -> tuple[str, ...]:
    """HISTORY messages naming the tables the UVW and times were computed with."""
    return tuple(f"measures {line}" for line in tables.sources)


if __name__ == "__main__":  # the child process of `current`
    print(json.dumps(choose()))
