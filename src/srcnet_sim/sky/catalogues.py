"""Catalogue readers: OSKAR sky-model text, CSV with a header, MIGHTEE-layout FITS tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from srcnet_sim.constants import RAD_PER_ARCSEC as ARCSEC
from srcnet_sim.constants import RAD_PER_DEG as DEG
from srcnet_sim.errors import UserInputError
from srcnet_sim.fs.input_files import MAX_CATALOGUE_TEXT_BYTES, read_text, regular_file
from srcnet_sim.progress import logger
from srcnet_sim.sky.model import SkyModel


OSKAR_COLUMNS = (
    "ra_deg", "dec_deg", "i_jy", "q_jy", "u_jy", "v_jy",
    "ref_freq_hz", "spectral_index", "rotation_measure", "major_arcsec", "minor_arcsec", "pa_deg",
)
# CSV header names accepted for each OSKAR column (lower case).
CSV_ALIASES = {
    "ra_deg": ("ra_deg", "ra"),
    "dec_deg": ("dec_deg", "dec"),
    "i_jy": ("i_jy", "stokes_i_jy", "i", "flux_jy", "flux"),
    "q_jy": ("q_jy", "stokes_q_jy", "q"),
    "u_jy": ("u_jy", "stokes_u_jy", "u"),
    "v_jy": ("v_jy", "stokes_v_jy", "v"),
    "ref_freq_hz": ("ref_freq_hz", "ref_freq", "freq_hz"),
    "spectral_index": ("spectral_index", "spix", "alpha"),
    "major_arcsec": ("major_arcsec", "major", "bmaj_arcsec"),
    "minor_arcsec": ("minor_arcsec", "minor", "bmin_arcsec"),
    "pa_deg": ("pa_deg", "pa", "position_angle_deg"),
}
# The seed workflow's MIGHTEE Level-1 column mapping.
MIGHTEE_COLUMNS = {"ra_deg": "RA", "dec_deg": "DEC", "i_jy": "S_PEAK", "ref_freq_hz": "NU_EFF",
                   "major_arcsec": "IM_MAJ", "minor_arcsec": "IM_MIN", "pa_deg": "IM_PA"}
# Read when present (srcnet-sim's truth catalogue writes them; MIGHTEE Level 1 has none): zero otherwise.
MIGHTEE_OPTIONAL_COLUMNS = {"q_jy": "S_INT_Q", "u_jy": "S_INT_U", "v_jy": "S_INT_V", "spectral_index": "SPEC_INDX"}


def _from_oskar_columns(columns: dict[str, np.ndarray], source: str) -> SkyModel:
    """Build a SkyModel from columns in OSKAR units (deg, Jy, Hz, arcsec)."""
    for required in ("ra_deg", "dec_deg", "i_jy"):
        if required not in columns:
            raise UserInputError("SKY_MODEL", f"{source} has no {required} column")
    dec = columns["dec_deg"]
    if np.any(~np.isfinite(dec)) or np.any(np.abs(dec) > 90):
        raise UserInputError("SKY_MODEL", f"{source}: declinations must lie within -90..90 deg")
    get = lambda key: columns.get(key, np.zeros_like(dec))  # noqa: E731
    return SkyModel.from_columns(
        ra_rad=columns["ra_deg"] * DEG,
        dec_rad=dec * DEG,
        stokes_i_jy=columns["i_jy"],
        stokes_q_jy=get("q_jy"),
        stokes_u_jy=get("u_jy"),
        stokes_v_jy=get("v_jy"),
        ref_freq_hz=get("ref_freq_hz"),
        spectral_index=get("spectral_index"),
        major_fwhm_rad=get("major_arcsec") * ARCSEC,
        minor_fwhm_rad=get("minor_arcsec") * ARCSEC,
        position_angle_rad=get("pa_deg") * DEG,
    )


def _catalogue_text(path: Path) -> str:
    return read_text(path, "SKY_MODEL", "catalogue", MAX_CATALOGUE_TEXT_BYTES)


def read_oskar_text(path: Path) -> SkyModel:
    """Read an OSKAR sky-model text file (whitespace or comma separated, '#' comments; UTF-8, see input_files)."""
    rows = []
    for number, line in enumerate(_catalogue_text(path).splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            values = [float(v) for v in line.replace(",", " ").split()]
        except ValueError as exc:
            raise UserInputError("SKY_MODEL", f"{path}:{number}: not a number in {line!r}") from exc
        if not 3 <= len(values) <= len(OSKAR_COLUMNS):
            raise UserInputError("SKY_MODEL", f"{path}:{number}: expected 3 to 12 columns, found {len(values)}")
        rows.append(values + [0.0] * (len(OSKAR_COLUMNS) - len(values)))
    if not rows:
        raise UserInputError("SKY_MODEL", f"{path} holds no sources")
    table = np.array(rows)
    return _from_oskar_columns({name: table[:, i] for i, name in enumerate(OSKAR_COLUMNS)}, str(path))


def read_csv(path: Path) -> SkyModel:
    """Read a CSV sky model with a header naming its columns (see CSV_ALIASES): UTF-8 with or without a
    byte-order mark, any line ending, '#' comment lines."""
    lines = [line for line in _catalogue_text(path).splitlines() if not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    header = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    mapping = {}
    for column, aliases in CSV_ALIASES.items():
        found = next((header[a] for a in aliases if a in header), None)
        if found is not None:
            mapping[column] = found
    try:
        rows = [{column: float(row[name]) for column, name in mapping.items()} for row in reader]
    except (TypeError, ValueError) as exc:
        raise UserInputError("SKY_MODEL", f"{path}: line {reader.line_num}: a value is not a number ({exc})") from exc
    if not rows:
        raise UserInputError("SKY_MODEL", f"{path} holds no sources")
    return _from_oskar_columns({c: np.array([r[c] for r in rows]) for c in mapping}, str(path))


# What each mapped column measures, our unit for it, and the unit assumed when TUNITn is absent.
MIGHTEE_UNITS = {"ra_deg": ("angle", "deg", "deg"), "dec_deg": ("angle", "deg", "deg"),
                 "i_jy": ("flux density", "Jy", "Jy"), "ref_freq_hz": ("frequency", "Hz", "Hz"),
                 "major_arcsec": ("angle", "arcsec", "arcsec"), "minor_arcsec": ("angle", "arcsec", "arcsec"),
                 "pa_deg": ("angle", "deg", "deg")}


def read_fits_table(path: Path, setting: str = "SKY_MODEL"):
    """The first table extension of a FITS file, read into memory: (astropy.io.fits table HDU)."""
    from astropy.io import fits

    regular_file(path, setting, "FITS catalogue")
    try:
        with fits.open(path, memmap=False) as hdus:
            table = next((hdu for hdu in hdus[1:] if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))), None)
            if table is not None:
                table.data  # noqa: B018 - read while the file is open
    except (OSError, ValueError, TypeError) as exc:
        raise UserInputError(setting, f"{path} is not a readable FITS table ({exc})") from exc
    if table is None:
        raise UserInputError(setting, f"{path} holds no FITS table extension")
    return table


def read_mightee_fits(path: Path, setting: str = "SKY_MODEL") -> SkyModel:
    """Read a FITS catalogue in the MIGHTEE Level-1 layout with the seed's column mapping.

    S_PEAK (Jy/beam) is taken as the Stokes I flux density, as the seed workflow does. Each
    column is read in the unit its TUNITn gives, FITS-standard (`deg`, `Jy/beam`, `Hz`) or in
    the upper case the MIGHTEE release writes (`DEG`, `JY/BEAM`, `HZ`); without a unit RA/DEC/IM_PA
    are degrees, S_PEAK Jy, NU_EFF Hz and IM_MAJ/IM_MIN arcsec. An unknown unit is an error naming
    the column.
    """
    from astropy import units as u

    from srcnet_sim.sky.units import parse_unit, to_value

    table = read_fits_table(path, setting)
    names = {name.upper(): name for name in table.columns.names}
    missing = [name for name in MIGHTEE_COLUMNS.values() if name not in names]
    if missing:
        raise UserInputError(setting, f"{path} lacks the MIGHTEE columns {', '.join(missing)}")
    columns = {}
    for ours, theirs in MIGHTEE_COLUMNS.items():
        kind, target, default = MIGHTEE_UNITS[ours]
        column = table.columns[names[theirs]]
        text = (column.unit or "").strip()
        unit = parse_unit(text, theirs, str(path), setting) if text else u.Unit(default)
        try:
            values = np.asarray(table.data[names[theirs]], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise UserInputError(setting, f"{path}: column {theirs} is not numeric ({exc})") from exc
        columns[ours] = to_value(values, unit, kind, u.Unit(target), theirs, str(path), setting)
    for ours, theirs in MIGHTEE_OPTIONAL_COLUMNS.items():
        if theirs in names:
            columns[ours] = np.asarray(table.data[names[theirs]], dtype=np.float64)
    return _from_oskar_columns(columns, str(path))


def read_catalogue(path: Path) -> SkyModel:
    """Read a catalogue file, choosing the reader by its extension."""
    regular_file(path, "SKY_MODEL", "catalogue file")
    suffix = path.suffix.lower()
    if suffix in (".fits", ".fit", ".fits.gz"):
        return read_mightee_fits(path)
    if suffix == ".csv":
        return read_csv(path)
    return read_oskar_text(path)


NAMED_SKY_MODELS = ("SYNTHETIC", "MIGHTEE_L1")
# Sources closer than this are counted as sharing one position (1 milliarcsecond).
SAME_POSITION_RAD = 1e-3 * ARCSEC


def warn_of_oddities(sky: SkyModel, source: str) -> None:
    """Log one warning per oddity of a read catalogue that is legitimate somewhere but usually a mistake:
    negative Stokes I (component lists may hold them; source catalogues should not) and sources sharing a
    position (a catalogue concatenated twice). Counts and the first case are given."""
    negative = np.flatnonzero(sky.stokes_i_jy < 0)
    if negative.size:
        logger.warning("SKY_MODEL: %d of %d sources of %s have negative Stokes I (first: #%d, %g Jy); they are "
                       "simulated as given", negative.size, len(sky), source, negative[0] + 1,
                       sky.stokes_i_jy[negative[0]])
    if len(sky) > 1:
        xyz = np.stack([np.cos(sky.dec_rad) * np.cos(sky.ra_rad), np.cos(sky.dec_rad) * np.sin(sky.ra_rad),
                        np.sin(sky.dec_rad)], axis=-1)
        from scipy.spatial import cKDTree

        pairs = cKDTree(xyz).query_pairs(SAME_POSITION_RAD, output_type="ndarray")
        if len(pairs):
            repeated = np.unique(pairs.max(axis=1))
            logger.warning("SKY_MODEL: %d of %d sources of %s share a position with another (within 1 mas; first: "
                           "#%d and #%d); each is simulated", repeated.size, len(sky), source, pairs[0].min() + 1,
                           pairs[0].max() + 1)
