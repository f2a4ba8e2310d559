"""Array assemblies: SKA-Mid configurations shipped as package data, or OSKAR telescope models.

Positions are kept as ITRF (geocentric, metres) because that is what the geometry and the
MeasurementSet ANTENNA table need; east/north/up offsets are only an input format.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import erfa
import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.fs.input_files import MAX_LAYOUT_TEXT_BYTES, directory, read_text

if TYPE_CHECKING:
    from astropy.coordinates import EarthLocation

CONFIG_FILE = "ska_mid_array_configs.csv"
SKA_MID_ASSEMBLIES = {
    "SKA-MID-AA0.5": "AA0.5",
    "SKA-MID-AA1": "AA1",
    "SKA-MID-AA2": "AA2",
    "SKA-MID-AASTAR": "AAstar",
    "SKA-MID-AA4": "AA4",
}
KNOWN_TELESCOPES = ("SKA-MID-AA0.5", "SKA-MID-AA1", "SKA-MID-AA2", "SKA-MID-AAstar", "SKA-MID-AA4")
# Plausibility of a layout read from a file: a site on the Earth's surface, dishes on the Earth
# (offsets within its diameter) and no two dishes closer than their diameter (they would collide).
SITE_HEIGHT_RANGE_M = (-1_000.0, 10_000.0)
MAX_OFFSET_M = 1.3e7


@dataclass(frozen=True)
class Site:
    """A point on the Earth: WGS84 geodetic longitude and latitude (degrees) and height above the ellipsoid (m)."""

    lon_deg: float
    lat_deg: float
    height_m: float

    def itrf_m(self) -> np.ndarray:
        """(3,) ITRF (geocentric X, Y, Z) position, m: erfa's WGS84 conversion, as astropy's EarthLocation makes it."""
        return erfa.gd2gc(erfa.WGS84, math.radians(self.lon_deg), math.radians(self.lat_deg), self.height_m)

    def earth_location(self) -> EarthLocation:
        """The site as an astropy EarthLocation (astropy.coordinates is imported only here)."""
        from astropy import units as u
        from astropy.coordinates import EarthLocation

        return EarthLocation.from_geodetic(self.lon_deg * u.deg, self.lat_deg * u.deg, self.height_m * u.m)


@dataclass(frozen=True)
class Telescope:
    """An array of dishes at one site.

    Attributes:
        name: array name (e.g. "SKA-Mid AA*"), written to OBSERVATION.ARRAY_NAME of the MS (see ms.observatory).
        station_names: (n_dish,) dish names.
        dish_types: (n_dish,) dish family names ("meerkat", "ska", or "dish" for custom arrays).
        diameters_m: (n_dish,) dish diameters in metres.
        itrf_m: (n_dish, 3) ITRF (geocentric X, Y, Z) positions in metres.
        site: the array reference point.
    """

    name: str
    station_names: tuple[str, ...]
    dish_types: tuple[str, ...]
    diameters_m: np.ndarray
    itrf_m: np.ndarray
    site: Site

    @property
    def n_dish(self) -> int:
        return len(self.station_names)

    @property
    def n_baselines(self) -> int:
        """Number of cross-correlation baselines, n(n-1)/2."""
        return self.n_dish * (self.n_dish - 1) // 2

    def longest_baseline_m(self) -> float:
        """Length of the longest baseline in metres."""
        diff = self.itrf_m[:, None, :] - self.itrf_m[None, :, :]
        return float(np.sqrt((diff**2).sum(-1)).max())


def enu_axes(site: Site) -> np.ndarray:
    """(3, 3) rows: the unit vectors east, north and up at `site`, expressed in ITRF."""
    lon = math.radians(site.lon_deg)
    lat = math.radians(site.lat_deg)
    sin_lon, cos_lon = np.sin(lon), np.cos(lon)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    return np.array(
        [
            [-sin_lon, cos_lon, 0.0],
            [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
            [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
        ]
    )


def enu_to_itrf(enu_m: np.ndarray, site: Site) -> np.ndarray:
    """Convert (n, 3) east/north/up offsets (m) from `site` into (n, 3) ITRF positions (m)."""
    return site.itrf_m() + np.asarray(enu_m, dtype=np.float64) @ enu_axes(site)


def itrf_to_enu(itrf_m: np.ndarray, site: Site) -> np.ndarray:
    """Convert (n, 3) ITRF positions (m) into (n, 3) east/north/up offsets (m) from `site` (inverse of enu_to_itrf)."""
    return (np.asarray(itrf_m, dtype=np.float64) - site.itrf_m()) @ enu_axes(site).T


def _read_ska_mid_csv() -> tuple[dict[str, float], list[dict[str, str]]]:
    """Read the shipped SKA-Mid configuration file: its reference point and its rows."""
    text = resources.files("srcnet_sim.instrument").joinpath("data", CONFIG_FILE).read_text()
    lines = text.splitlines()
    header = [line for line in lines if line.startswith("#")]
    ref_line = next(line for line in header if "reference point" in line and "longitude" in line)
    parts = ref_line.split(":", 1)[1].replace("deg", "").replace("(WGS84)", "").split(",")
    ref = {}
    for part in parts:
        key, value = part.split()[:2]
        ref[key] = float(value.rstrip("m"))
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    return ref, rows


def load_ska_mid(assembly: str) -> Telescope:
    """Load one SKA-Mid array assembly ("AA0.5", "AA1", "AA2", "AAstar", "AA4")."""
    ref, rows = _read_ska_mid_csv()
    site = Site(ref["longitude"], ref["latitude"], ref["height"])
    rows = [row for row in rows if row["array"] == assembly]
    enu = np.array([[float(r["east_m"]), float(r["north_m"]), float(r["up_m"])] for r in rows])
    label = assembly.replace("star", "*")
    return Telescope(
        name=f"SKA-Mid {label}",
        station_names=tuple(r["station"] for r in rows),
        dish_types=tuple(r["dish"] for r in rows),
        diameters_m=np.array([float(r["diameter_m"]) for r in rows]),
        itrf_m=enu_to_itrf(enu, site),
        site=site,
    )


def load_oskar_telescope(path: Path, default_diameter_m: float = 15.0) -> Telescope:
    """Load an OSKAR telescope model directory (position.txt + layout.txt).

    position.txt holds "lon_deg lat_deg [height_m]"; layout.txt holds per station
    "east_m north_m [up_m]" (comma or whitespace separated). OSKAR models carry no dish
    diameter, so every dish gets `default_diameter_m`.
    """
    position_file, layout_file = path / "position.txt", path / "layout.txt"
    for needed in (position_file, layout_file):
        if not os.path.lexists(needed):
            raise UserInputError("TELESCOPE", f"OSKAR telescope model {path} has no {needed.name}")
    position = _read_numeric_rows(position_file)[0]
    height = position[2] if len(position) > 2 else 0.0
    _check_site(position_file, position[0], position[1] if len(position) > 1 else math.nan, height)
    site = Site(position[0], position[1], height)
    layout = _read_numeric_rows(layout_file)
    enu = np.zeros((len(layout), 3))
    for i, row in enumerate(layout):
        enu[i, : min(3, len(row))] = row[:3]
    n_dish = len(layout)
    if n_dish < 2:
        raise UserInputError("TELESCOPE", f"{layout_file} lists {n_dish} station(s); at least 2 are needed")
    _check_layout(layout_file, enu, default_diameter_m)
    return Telescope(
        name=path.name.removesuffix(".tm") or "custom",
        station_names=tuple(f"S{i:03d}" for i in range(n_dish)),
        dish_types=("dish",) * n_dish,
        diameters_m=np.full(n_dish, default_diameter_m),
        itrf_m=enu_to_itrf(enu, site),
        site=site,
    )


def _check_site(path: Path, lon_deg: float, lat_deg: float, height_m: float) -> None:
    """Refuse a site that is not finite or not on the Earth (casacore measures spin forever on a NaN)."""
    low, high = SITE_HEIGHT_RANGE_M
    if not (math.isfinite(lon_deg) and -180.0 <= lon_deg <= 360.0):
        raise UserInputError("TELESCOPE", f"{path}: longitude {lon_deg} deg is not a finite value in -180..360")
    if not (math.isfinite(lat_deg) and -90.0 <= lat_deg <= 90.0):
        raise UserInputError("TELESCOPE", f"{path}: latitude {lat_deg} deg is not a finite value in -90..90")
    if not (math.isfinite(height_m) and low <= height_m <= high):
        raise UserInputError("TELESCOPE", f"{path}: height {height_m} m is not a finite value in {low:g}..{high:g} m")


def _check_layout(path: Path, enu_m: np.ndarray, diameter_m: float) -> None:
    """Refuse (n, 3) east/north/up offsets that are not finite, lie off the Earth, or put two dishes in one place."""
    from scipy.spatial import cKDTree

    bad = np.flatnonzero(~np.all(np.isfinite(enu_m), axis=1))
    if bad.size:
        raise UserInputError("TELESCOPE", f"{path}: station {bad[0]} has a non-finite offset {enu_m[bad[0]].tolist()}; "
                             "every east/north/up offset must be a finite number of metres")
    far = np.flatnonzero(np.linalg.norm(enu_m, axis=1) > MAX_OFFSET_M)
    if far.size:
        raise UserInputError("TELESCOPE", f"{path}: station {far[0]} lies {np.linalg.norm(enu_m[far[0]]):.3g} m from the "
                             f"site; offsets must stay within {MAX_OFFSET_M:g} m (the Earth's diameter)")
    distance, index = cKDTree(enu_m).query(enu_m, k=2)
    first = int(np.argmin(distance[:, 1]))
    if distance[first, 1] < diameter_m:
        raise UserInputError("TELESCOPE", f"{path}: stations {first} and {int(index[first, 1])} are "
                             f"{distance[first, 1]:.3g} m apart; dishes of {diameter_m:g} m need at least that distance")


def _read_numeric_rows(path: Path) -> list[list[float]]:
    """Rows of numbers of an OSKAR text file (comma or whitespace separated, '#' comments; UTF-8, see input_files)."""
    rows = []
    for line in read_text(path, "TELESCOPE", "telescope file", MAX_LAYOUT_TEXT_BYTES).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError as exc:
            raise UserInputError("TELESCOPE", f"{path}: cannot read number in line {line!r}") from exc
    if not rows:
        raise UserInputError("TELESCOPE", f"{path} holds no positions")
    return rows


def load_telescope(spec: str) -> Telescope:
    """Resolve a TELESCOPE setting: an SKA-Mid assembly name or an OSKAR .tm directory path."""
    key = spec.strip().upper()
    if key in SKA_MID_ASSEMBLIES:
        return load_ska_mid(SKA_MID_ASSEMBLIES[key])
    path = Path(spec).expanduser()
    if os.path.lexists(path):
        return load_oskar_telescope(directory(path, "TELESCOPE", "OSKAR telescope model"))
    raise UserInputError(
        "TELESCOPE",
        f"unknown telescope {spec!r}; use one of {', '.join(KNOWN_TELESCOPES)} "
        "or the path of an OSKAR telescope model directory",
    )
