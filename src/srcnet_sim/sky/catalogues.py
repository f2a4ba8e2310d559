"""Catalogue readers: OSKAR sky-model text, CSV with a header, MIGHTEE-layout FITS tables (and, in sky.karabo_hi,
Karabo's HI line-emission HDF5)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from srcnet_sim.constants import HI_REST_FREQ_HZ
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
    # spectral lines (sky.lines): the SKA Data Challenge 2 HI truth catalogue's names where it has them
    "line_flux_jy_hz": ("line_flux_jy_hz", "line_flux_integral"),
    "line_flux_jy_kms": ("line_flux_jy_kms",),
    "line_freq_hz": ("line_freq_hz", "central_freq"),
    "redshift": ("redshift", "z"),
    "line_rest_freq_hz": ("line_rest_freq_hz", "rest_freq_hz"),
    "w20_kms": ("w20_kms", "w20"),
    "w50_kms": ("w50_kms", "w50"),
    "line_sigma_kms": ("line_sigma_kms",),
    "hi_size_arcsec": ("hi_size_arcsec", "hi_size"),
    "inclination_deg": ("inclination_deg", "i"),
}
# The seed workflow's MIGHTEE Level-1 column mapping.
MIGHTEE_COLUMNS = {"ra_deg": "RA", "dec_deg": "DEC", "i_jy": "S_PEAK", "ref_freq_hz": "NU_EFF",
                   "major_arcsec": "IM_MAJ", "minor_arcsec": "IM_MIN", "pa_deg": "IM_PA"}
# Read when present (srcnet-sim's truth catalogue writes them; MIGHTEE Level 1 has none): zero otherwise.
MIGHTEE_OPTIONAL_COLUMNS = {"q_jy": "S_INT_Q", "u_jy": "S_INT_U", "v_jy": "S_INT_V", "spectral_index": "SPEC_INDX",
                            "line_flux_jy_hz": "LINE_FLUX", "line_freq_hz": "LINE_FREQ", "line_w20_hz": "LINE_W20",
                            "line_sigma_hz": "LINE_SIG"}
HI_DISPERSION_KMS = 10.0  # the HI gas's velocity dispersion in a disc (about 10 km/s in nearby discs: Tamburro et al. 2009)
HOLMBERG_THICKNESS = 0.2  # intrinsic axis ratio q0 of a disc: b/a = sqrt(cos^2 i (1 - q0^2) + q0^2) (Holmberg 1958)
W20_PER_W50 = 3.5885 / 2.3548  # of a Gaussian line: how a W50 is turned into the W20 the model takes
C_KM_S = 299_792.458


def _line_columns(get, has, n: int) -> dict[str, np.ndarray]:
    """SkyModel's line fields (SI) from catalogue columns in their units: the observed frequency from
    line_freq_hz, or redshift and line_rest_freq_hz (HI by default); the flux in Jy Hz or Jy km/s; W20 or W50 in
    km/s (observed frame: dnu = dv nu / c); the disc dispersion line_sigma_kms (10 km/s by default when an
    inclination is given, the SDC2 discs; 0, a Gaussian line, otherwise)."""
    if not (has("line_flux_jy_hz") or has("line_flux_jy_kms")):
        return {}
    rest = get("line_rest_freq_hz") if has("line_rest_freq_hz") else np.full(n, HI_REST_FREQ_HZ)
    freq = get("line_freq_hz") if has("line_freq_hz") else rest / (1.0 + get("redshift"))
    per_kms = freq / C_KM_S  # Hz per km/s at the line
    flux = get("line_flux_jy_hz") if has("line_flux_jy_hz") else get("line_flux_jy_kms") * per_kms
    w20 = get("w20_kms") if has("w20_kms") else get("w50_kms") * W20_PER_W50
    sigma = get("line_sigma_kms") if has("line_sigma_kms") else (
        np.full(n, HI_DISPERSION_KMS) if has("inclination_deg") else np.zeros(n))
    return {"line_flux_jy_hz": flux, "line_freq_hz": freq, "line_w20_hz": w20 * per_kms, "line_sigma_hz": sigma * per_kms}


def _from_oskar_columns(columns: dict[str, np.ndarray], source: str) -> SkyModel:
    """Build a SkyModel from columns in OSKAR units (deg, Jy, Hz, arcsec)."""
    for required in ("ra_deg", "dec_deg"):
        if required not in columns:
            raise UserInputError("SKY_MODEL", f"{source} has no {required} column")
    if "i_jy" not in columns and "line_flux_jy_hz" not in columns and "line_flux_jy_kms" not in columns:
        raise UserInputError("SKY_MODEL", f"{source} has no i_jy column (nor a line flux: line_flux_jy_hz, "
                             "line_flux_integral or line_flux_jy_kms)")
    line = "line_flux_jy_hz" in columns or "line_flux_jy_kms" in columns
    if line and "line_freq_hz" not in columns and "redshift" not in columns:
        raise UserInputError("SKY_MODEL", f"{source}: a line flux needs line_freq_hz (central_freq) or redshift (z)")
    if line and "w20_kms" not in columns and "w50_kms" not in columns and "line_w20_hz" not in columns:
        raise UserInputError("SKY_MODEL", f"{source}: a line flux needs its width: w20_kms (w20) or w50_kms (w50)")
    dec = columns["dec_deg"]
    if np.any(~np.isfinite(dec)) or np.any(np.abs(dec) > 90):
        raise UserInputError("SKY_MODEL", f"{source}: declinations must lie within -90..90 deg")
    get = lambda key: columns.get(key, np.zeros_like(dec))  # noqa: E731
    has = lambda key: key in columns  # noqa: E731
    lines = _line_columns(get, has, len(dec))
    major, minor = get("major_arcsec"), get("minor_arcsec")
    if has("hi_size_arcsec") and not has("major_arcsec"):  # SDC2: the HI diameter taken as the Gaussian's FWHM
        major = get("hi_size_arcsec")
        cos_i = np.cos(get("inclination_deg") * DEG)
        minor = major * np.sqrt(cos_i**2 * (1 - HOLMBERG_THICKNESS**2) + HOLMBERG_THICKNESS**2)
    for name in ("line_w20_hz", "line_sigma_hz"):  # the truth catalogue's own columns, already SI
        if has(name):
            lines[name] = get(name)
    return SkyModel.from_columns(
        ra_rad=columns["ra_deg"] * DEG,
        dec_rad=dec * DEG,
        stokes_i_jy=get("i_jy"),
        stokes_q_jy=get("q_jy"),
        stokes_u_jy=get("u_jy"),
        stokes_v_jy=get("v_jy"),
        ref_freq_hz=get("ref_freq_hz"),
        spectral_index=get("spectral_index"),
        major_fwhm_rad=major * ARCSEC,
        minor_fwhm_rad=minor * ARCSEC,
        position_angle_rad=get("pa_deg") * DEG,
        **lines,
    )


def _catalogue_text(path: Path) -> str:
    return read_text(path, "SKY_MODEL", "catalogue", MAX_CATALOGUE_TEXT_BYTES)


def read_oskar_text(path: Path, text: str | None = None) -> SkyModel:
    """Read an OSKAR sky-model text file (whitespace or comma separated, '#' comments; UTF-8, see input_files)."""
    rows = []
    text = _catalogue_text(path) if text is None else text
    for number, line in enumerate(text.splitlines(), start=1):
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


def read_csv(path: Path, text: str | None = None, whitespace: bool = False) -> SkyModel:
    """Read a CSV sky model with a header naming its columns (see CSV_ALIASES): UTF-8 with or without a
    byte-order mark, any line ending, '#' comment lines; whitespace: columns separated by blanks (the SKA Data
    Challenge 2 truth catalogue's text layout) instead of commas."""
    text = _catalogue_text(path) if text is None else text
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if whitespace:
        lines = [",".join(line.split()) for line in lines]
    reader = csv.DictReader(lines)
    header = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    mapping = {}
    for column, aliases in CSV_ALIASES.items():
        found = next((header[a] for a in aliases if a in header), None)
        if found is not None:
            mapping[column] = found
    # "i": the inclination in a line catalogue (SDC2's HI truth), Stokes I otherwise
    ambiguous = "inclination_deg" if not ("line_flux_jy_hz" in mapping or "line_flux_jy_kms" in mapping) else "i_jy"
    if mapping.get(ambiguous, "").strip().lower() == "i":
        del mapping[ambiguous]
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
    if suffix in (".h5", ".hdf5"):
        from srcnet_sim.sky.karabo_hi import read_karabo_hi  # Karabo's HI line-emission catalogue

        return read_karabo_hi(path)
    text = _catalogue_text(path)
    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    if first and not any(_is_number(token) for token in first.replace(",", " ").split()):
        return read_csv(path, text, whitespace=True)  # a text table with a header line (SDC2's layout)
    return read_oskar_text(path, text)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


NAMED_SKY_MODELS = ("SYNTHETIC", "SYNTHETIC_HI", "MIGHTEE_L1")
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
