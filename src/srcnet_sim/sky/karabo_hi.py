"""Karabo's HI line-emission catalogue: an HDF5 file of 21 cm sources, read into a SkyModel.

The format, as Karabo (github.com/i4Ds/Karabo-Pipeline) defines and uses it:
  - `SkyModel.get_sky_model_from_h5_to_xarray` (karabo/simulation/sky_model.py at commit
    071e467b54138abe3cc3edc51181e74e22feec7e) reads, by default, four 1-D datasets at the file's root:
    "Right Ascension" and "Declination" (deg), "Flux" (taken as Stokes I) and "Observed Redshift"; Karabo's
    sample HI catalogue (HISourcesSmallCatalogDownloadObject, `HI_sources_small_catalog_v0.h5`) is read so.
  - The catalogue comes from HI simulations on a PINOCCHIO halo light cone (karabo/examples/HIIM_Img_Recovery.ipynb
    at commit e767cb2877eecb0611a9782c24253a04766e9ee1, whose recorded output lists exactly those four datasets and
    the attribute Units = "J/m²/s = 10^(26)*Jy*Hz" on "Flux"): the integrated line flux in W m^-2.
  - Karabo's line-emission pipeline (karabo/simulation/line_emission.py, same commit as sky_model.py) gives a
    source no profile and no width: all of "Flux", as Stokes I in Jy, goes into the one channel whose frequency
    range holds c / (0.21 m (1 + z)).

Here each source becomes a point source with no continuum and a Gaussian line (sky.lines):
  - position: deg -> rad;
  - line_freq_hz = HI_REST_FREQ_HZ / (1 + z) with the true HI rest frequency 1420.405751768 MHz (Karabo's
    c / 0.21 m = 1427.58 MHz puts its lines 0.5 % higher in frequency);
  - line_flux_jy_hz from "Flux" in the unit its "Units" attribute names (the text before any "="): an energy flux
    (W/m^2, J/m^2/s, Jy Hz, erg/s/cm^2) is converted (1 W m^-2 = 1e26 Jy Hz); a flux density (Jy, mJy) is the
    line's peak, F = S_peak sqrt(2 pi) W20 / 3.5885 (a channel at the peak of a resolved line shows S_peak, as
    Karabo's one channel shows S); without the attribute, "Flux" is Jy as Karabo reads it (a warning says so);
  - line_w20_hz = KARABO_HI_W20_KMS nu / c (Karabo has no width; see there).
Datasets elsewhere than the root (Karabo's SkyPrefixMapping may name other paths) are not looked for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from srcnet_sim.constants import HI_REST_FREQ_HZ, RAD_PER_DEG, SPEED_OF_LIGHT_M_S
from srcnet_sim.errors import UserInputError
from srcnet_sim.fs.input_files import regular_file
from srcnet_sim.progress import logger
from srcnet_sim.sky.lines import W20_PER_SIGMA
from srcnet_sim.sky.model import SkyModel

SETTING = "SKY_MODEL"
# Karabo's dataset names (SkyModel.get_sky_model_from_h5_to_xarray's default SkyPrefixMapping) -> our columns.
KARABO_HI_DATASETS = {"ra_deg": "Right Ascension", "dec_deg": "Declination", "flux": "Flux",
                      "redshift": "Observed Redshift"}
FLUX_UNITS_ATTRIBUTE = "Units"
# The W20 given to every line, km/s in the galaxy's frame (Delta nu = W20 nu / c). Karabo's catalogue has no width.
# This is the W20 of an M* HI galaxy (ALFALFA, log M*/Msun = 9.94) under SYNTHETIC_HI's relations (baryonic
# Tully-Fisher with M_b = 2 M_HI: V = 139 km/s; 10 km/s dispersion) seen at 60 deg, the median inclination of
# random orientations (cos i = 0.5): 268 km/s, rounded. The profile is a Gaussian of that W20.
KARABO_HI_W20_KMS = 270.0
# A Gaussian line's integrated flux per (peak flux density x W20): sqrt(2 pi) / (2 sqrt(2 ln 5)) = 0.6985.
GAUSS_FLUX_PER_PEAK_W20 = float(np.sqrt(2.0 * np.pi) / W20_PER_SIGMA)


def _fail(path: Path, message: str) -> UserInputError:
    return UserInputError(SETTING, f"{path}: {' '.join(message.split())}")


def _read_datasets(path: Path) -> tuple[dict[str, np.ndarray], str | None]:
    """Karabo's four datasets as float64 arrays (by our column name) and the Flux dataset's Units text, or None."""
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as h5:
            columns: dict[str, np.ndarray] = {}
            for ours, name in KARABO_HI_DATASETS.items():
                item = h5.get(name)
                if not isinstance(item, h5py.Dataset):
                    found = ", ".join(repr(k) for k in sorted(h5.keys())[:8]) or "none"
                    wanted = ", ".join(repr(n) for n in KARABO_HI_DATASETS.values())
                    raise _fail(path, f"has no dataset {name!r} (Karabo's HI catalogue: {wanted} at the root; "
                                f"found: {found})")
                if item.ndim != 1 or item.dtype.kind not in "fiu":
                    raise _fail(path, f"dataset {name!r} must be a 1-D array of numbers, not {item.ndim}-D "
                                f"{item.dtype}")
                columns[ours] = np.asarray(item[()], dtype=np.float64)
            units = h5["Flux"].attrs.get(FLUX_UNITS_ATTRIBUTE)
    except UserInputError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise _fail(path, f"is not a readable HDF5 file ({exc})") from exc
    if isinstance(units, np.ndarray) and units.size == 1:
        units = units.reshape(()).item()
    if isinstance(units, (bytes, np.bytes_)):
        units = bytes(units).decode("utf-8", "replace")
    return columns, None if units is None else str(units)


def _flux_scale(units: str | None, path: Path) -> tuple[str, float]:
    """('energy', Jy Hz per unit) or ('density', Jy per unit) for the Flux dataset's Units text."""
    from astropy import units as u

    if units is None:
        logger.warning("SKY_MODEL: %s: dataset 'Flux' has no %r attribute; its values are read as Jy, as Karabo "
                       "reads them (each line's peak flux density)", path, FLUX_UNITS_ATTRIBUTE)
        return "density", 1.0
    text = units.split("=", 1)[0].strip().replace("²", "^2").replace("³", "^3")
    try:
        with warnings.catch_warnings():  # "J/m^2/s", Karabo's own spelling, has the slashes FITS discourages
            warnings.simplefilter("ignore", u.UnitsWarning)
            unit = u.Unit(text)
    except ValueError:
        unit = None
    if unit is not None and unit.is_equivalent(u.W / u.m**2):
        return "energy", float(unit.to(u.Jy * u.Hz))
    if unit is not None and unit.is_equivalent(u.Jy):
        return "density", float(unit.to(u.Jy))
    raise _fail(path, f"dataset 'Flux' has Units {units!r}: use an integrated flux (W/m^2, J/m^2/s, Jy Hz) or a "
                "peak flux density (Jy, mJy)")


def read_karabo_hi(path: Path) -> SkyModel:
    """Read Karabo's HI catalogue (HDF5; module docstring): point sources with no continuum, each a Gaussian
    21 cm line of integrated flux line_flux_jy_hz (Jy Hz) at line_freq_hz = 1420.405751768 MHz / (1 + z) (Hz)
    with W20 = KARABO_HI_W20_KMS (km/s, rest frame). Any unreadable file, missing or malformed dataset,
    mismatched lengths, non-finite value, declination outside -90..90 deg or redshift <= -1 is one
    UserInputError naming SKY_MODEL."""
    regular_file(path, SETTING, "catalogue file")
    columns, units = _read_datasets(path)
    lengths = {KARABO_HI_DATASETS[k]: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise _fail(path, "datasets differ in length: " + ", ".join(f"{k!r} {n}" for k, n in lengths.items()))
    if not next(iter(lengths.values())):
        raise _fail(path, "holds no sources")
    for ours, values in columns.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise _fail(path, f"dataset {KARABO_HI_DATASETS[ours]!r} has {values[bad[0]]} at source #{bad[0] + 1} "
                        f"({bad.size} non-finite values); every value must be finite")
    for ours, wrong, allowed in (("dec_deg", np.abs(columns["dec_deg"]) > 90.0, "declinations lie within -90..90 deg"),
                                 ("redshift", columns["redshift"] <= -1.0, "a redshift is > -1")):
        if np.any(wrong):
            first = int(np.flatnonzero(wrong)[0])
            raise _fail(path, f"dataset {KARABO_HI_DATASETS[ours]!r} has {columns[ours][first]} at source "
                        f"#{first + 1}; {allowed}")
    kind, scale = _flux_scale(units, path)
    freq_hz = HI_REST_FREQ_HZ / (1.0 + columns["redshift"])
    w20_hz = KARABO_HI_W20_KMS * 1e3 * freq_hz / SPEED_OF_LIGHT_M_S  # dnu = dv nu / c
    flux = columns["flux"] * scale
    if kind == "density":  # the line's peak flux density (Jy): F = S sqrt(2 pi) sigma
        flux = flux * GAUSS_FLUX_PER_PEAK_W20 * w20_hz
    n = len(freq_hz)
    return SkyModel.from_columns(ra_rad=columns["ra_deg"] * RAD_PER_DEG, dec_rad=columns["dec_deg"] * RAD_PER_DEG,
                                 stokes_i_jy=np.zeros(n), line_flux_jy_hz=flux, line_freq_hz=freq_hz,
                                 line_w20_hz=w20_hz, line_sigma_hz=np.zeros(n))
