#!/usr/bin/env python3
"""Compare two staging areas product by product: the same files with the same bytes, timestamps and ids aside.

    python3 scripts/compare_products.py BEFORE_DIR AFTER_DIR

Every file under the two directories is compared by its relative path:
  - tar files (the MS, the QA report) member by member: names, sizes and bytes; a member of a casacore table
    that differs is compared again as a table (every column of every row), where only the columns that hold
    the time of writing (HISTORY's TIME) may differ;
  - FITS files (and FITS members of the tars) HDU by HDU: the data bit for bit, the headers card by card except
    DATE (the time of writing), with PyBDSF's temporary input directory (random) masked where it is named;
  - `.meta` sidecars and JSON files key by key, except the times of writing (`obs_creation_date`, `created`);
  - anything else byte for byte.
Prints one line per difference and exits 1 when there is any, 0 when the products are the same.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

FITS_HEADER_TIMES = {"DATE"}  # when the file was written
PYBDSF_INPUT = re.compile(r"\S*srcnet-sim-pybdsf-\w+")  # the QA's temporary copy of the image: a random name
JSON_TIMES = {"obs_creation_date", "created", "creation_date", "timestamp"}
TABLE_TIMES = {("HISTORY", "TIME")}  # (subtable, column) holding when a row was written


def _digest(handle) -> str:
    return hashlib.sha256(handle.read()).hexdigest()


def _without_times(value):
    """A JSON value with the times of writing removed at any depth."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in JSON_TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def compare_json(a: Path, b: Path, where: str) -> list[str]:
    left, right = (_without_times(json.loads(p.read_text())) for p in (a, b))
    return [] if left == right else [f"{where}: JSON differs"]


def _header_cards(header) -> list[tuple[str, object]]:
    """(keyword, value) of every card but the times of writing, PyBDSF's temporary paths masked."""
    return [(c.keyword, PYBDSF_INPUT.sub("<pybdsf input>", c.value) if isinstance(c.value, str) else c.value)
            for c in header.cards if c.keyword not in FITS_HEADER_TIMES]


def compare_fits(a: Path, b: Path, where: str) -> list[str]:
    from astropy.io import fits

    problems = []
    with fits.open(a) as left, fits.open(b) as right:
        if len(left) != len(right):
            return [f"{where}: {len(left)} HDUs vs {len(right)}"]
        for i, (x, y) in enumerate(zip(left, right)):
            keys_x, keys_y = (_header_cards(h.header) for h in (x, y))
            if keys_x != keys_y:
                changed = sorted({k for k, _ in set(keys_x) ^ set(keys_y)})
                problems.append(f"{where}[{i}]: header differs in {', '.join(changed)}")
            if x.data is None or y.data is None:
                if (x.data is None) != (y.data is None):
                    problems.append(f"{where}[{i}]: data in one file only")
            elif np.asarray(x.data).tobytes() != np.asarray(y.data).tobytes():
                problems.append(f"{where}[{i}]: data differs")
    return problems


def _table_of(member: str) -> tuple[str, str] | None:
    """(table directory inside the tar, subtable name or "MAIN") of a casacore table's file, or None."""
    parts = member.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1].endswith(".ms"):
            inner = parts[i] if i < len(parts) - 1 and parts[i].isupper() else "MAIN"
            return "/".join(parts[:i] + ([parts[i]] if inner != "MAIN" else [])), inner
    return None


def compare_tables(a: Path, b: Path, subtable: str, where: str) -> list[str]:
    """Every column of every row of two casacore tables, except the times of writing."""
    from casacore.tables import table

    problems = []
    with table(str(a), ack=False) as left, table(str(b), ack=False) as right:
        if left.nrows() != right.nrows() or sorted(left.colnames()) != sorted(right.colnames()):
            return [f"{where}: {left.nrows()} rows / {left.colnames()} vs {right.nrows()} / {right.colnames()}"]
        for column in left.colnames():
            if (subtable, column) in TABLE_TIMES or left.nrows() == 0:
                continue
            if not left.iscelldefined(column, 0):
                continue
            x, y = left.getcol(column), right.getcol(column)
            same = (x == y) if isinstance(x, (list, dict)) else np.array_equal(np.asarray(x), np.asarray(y))
            if not same:
                problems.append(f"{where}: column {column} differs")
    return problems


def compare_tars(a: Path, b: Path, where: str) -> list[str]:
    problems = []
    with tarfile.open(a) as left, tarfile.open(b) as right:
        members_x = {m.name: m for m in left.getmembers()}
        members_y = {m.name: m for m in right.getmembers()}
        if sorted(members_x) != sorted(members_y):
            only = sorted(set(members_x) ^ set(members_y))
            return [f"{where}: members differ ({', '.join(only[:5])})"]
        tables, fits_members = set(), set()
        for name, member in members_x.items():
            if not member.isfile():
                continue
            x, y = left.extractfile(member), right.extractfile(members_y[name])
            if _digest(x) != _digest(y):
                table = _table_of(name)
                if table is not None:
                    tables.add(table)
                elif name.endswith(".fits"):
                    fits_members.add(name)
                else:
                    problems.append(f"{where}:{name}: bytes differ")
        if tables or fits_members:
            with tempfile.TemporaryDirectory() as scratch:
                left.extractall(Path(scratch) / "a", filter="data")
                right.extractall(Path(scratch) / "b", filter="data")
                for directory, subtable in sorted(tables):
                    problems += compare_tables(Path(scratch) / "a" / directory, Path(scratch) / "b" / directory,
                                               subtable, f"{where}:{directory}")
                for name in sorted(fits_members):
                    problems += compare_fits(Path(scratch) / "a" / name, Path(scratch) / "b" / name, f"{where}:{name}")
    return problems


def compare_file(a: Path, b: Path, where: str) -> list[str]:
    if a.suffix == ".tar":
        return compare_tars(a, b, where)
    if a.suffix == ".fits":
        return compare_fits(a, b, where)
    if a.suffix in (".meta", ".json"):
        return compare_json(a, b, where)
    return [] if a.read_bytes() == b.read_bytes() else [f"{where}: bytes differ"]


def compare_trees(before: Path, after: Path) -> list[str]:
    """One line per difference between the files under `before` and `after`."""
    files_x = {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
    files_y = {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    problems = [f"{p}: only in {before if p in files_x else after}" for p in sorted(files_x ^ files_y)]
    for relative in sorted(files_x & files_y):
        problems += compare_file(before / relative, after / relative, str(relative))
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    before, after = (Path(p) for p in argv)
    problems = compare_trees(before, after)
    for line in problems:
        print(line)
    count = sum(1 for p in after.rglob("*") if p.is_file())
    print(f"{count} files compared: " + ("identical" if not problems else f"{len(problems)} differences"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
