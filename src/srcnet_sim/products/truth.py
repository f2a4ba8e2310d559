"""The truth catalogue: every simulated source, intrinsic and as the array saw it, as a FITS binary table.

Columns carry the MIGHTEE Level-1 names where the meaning is the same, so that a reader of one reads the
other; `SKY_MODEL=<truth file>` (the MIGHTEE reader) simulates the same visibilities again:

    NAME, SOURCE_ID      source name and its index in the simulated sky model
    RA, DEC (deg)        J2000 position
    S_INT (Jy)           intrinsic Stokes I at NU_EFF (no primary beam)
    S_PEAK (Jy/beam)     the same value: the seed's MIGHTEE reader takes S_PEAK as the flux density, and the
                         truth has no restoring beam to lower the peak of a Gaussian source
    S_INT_Q/U/V (Jy)     intrinsic Stokes Q, U, V at NU_EFF
    NU_EFF (Hz)          reference frequency (band centre for flat-spectrum sources given without one)
    SPEC_INDX            spectral index alpha, S(f) = S(NU_EFF) (f / NU_EFF)^alpha
    IM_MAJ, IM_MIN, IM_PA (deg)  intrinsic Gaussian FWHM and position angle (0 for points), the columns the
                         seed's reader takes as the source shape
    DC_MAJ, DC_MIN, DC_PA (deg)  the same values under MIGHTEE's name for a deconvolved (intrinsic) shape
    PB_GAIN              (n_chan) primary-beam gain per channel: mean of E_p E_q over the baselines written
    S_APP (Jy)           (n_chan) apparent Stokes I per channel: the continuum at the channel centre plus the
                         line's mean over the channel, x PB_GAIN
    S_APP_MEAN (Jy)      band average of S_APP (channels of equal width weigh equally, as in an MFS image)
    PC_DIST (deg)        distance from the phase (and pointing) centre
    LINE_FLUX (Jy Hz), LINE_FLUX_KMS (Jy km/s)  integrated flux of the source's spectral line (0: none)
    LINE_FREQ (Hz), LINE_Z_HI  observed centre frequency, and the redshift it means for HI (1420.405752 MHz)
    LINE_W20 (Hz), LINE_W20_KMS (km/s)  full width at 20 % of the peak (observed frame)
    LINE_SIG (Hz)        0 for a Gaussian line, else the dispersion of the disc's double-horned profile (sky.lines)
    LINE_S_APP (Jy Hz)   the line's flux within the band as the array saw it: sum over channels of its channel
                         flux x PB_GAIN x the channel width (S_APP includes the line, per channel)

The header gives the channels (CHAN0 + k CHANINC, width CHANWID, Hz), the band, the observation's
times, the phase centre, the beam model and the settings. The primary beams are unpolarised, so the apparent
Q, U, V are the intrinsic values x PB_GAIN. Bandwidth and time smearing conserve integrated flux and are
not in S_APP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from srcnet_sim import __version__
from srcnet_sim.errors import UserInputError
from srcnet_sim.instrument.beams import beam_parameters
from srcnet_sim.constants import HI_REST_FREQ_HZ
from srcnet_sim.sky.catalogues import C_KM_S
from srcnet_sim.sky.lines import channel_line_flux
from srcnet_sim.simulate.apparent import apparent_gain
from srcnet_sim.simulate.observation import Observation

EXTNAME = "TRUTH"
GAIN_RULE = "mean of E_p*E_q over the baselines written"
TURNING_GAIN_RULE = "mean of (EHp*EHq+EVp*EVq)/2 over the baselines and time steps"  # see simulate.apparent


def _columns(obs: Observation) -> list[fits.Column]:
    sky = obs.sky
    n, n_chan = len(sky), len(obs.freq_hz)
    mid_hz = float(np.mean(obs.freq_hz))
    flat = sky.ref_freq_hz <= 0
    ref_hz = np.where(flat, mid_hz, sky.ref_freq_hz)
    alpha = np.where(flat, 0.0, sky.spectral_index)
    gain = apparent_gain(obs)  # (n_chan, n_src)
    apparent = sky.channel_stokes(obs.freq_hz, obs.channel_width_hz)[:, 0, :] * gain  # (n_chan, n_src)
    major, minor, pa = (np.degrees(a) for a in (sky.major_fwhm_rad, sky.minor_fwhm_rad, sky.position_angle_rad))
    has_line = sky.line_flux_jy_hz != 0
    safe_freq = np.where(has_line, sky.line_freq_hz, 1.0)
    per_kms = safe_freq / C_KM_S  # Hz per km/s at each line
    line_only = channel_line_flux(sky.line_flux_jy_hz, sky.line_freq_hz, sky.line_w20_hz, sky.line_sigma_hz,
                                  obs.freq_hz, obs.channel_width_hz) if sky.has_lines else np.zeros((n_chan, n))
    line_apparent = (line_only * gain).sum(axis=0) * obs.channel_width_hz  # (n_src,) the line's flux in the band x beam
    vector = f"{n_chan}D"
    return [
        fits.Column("NAME", "16A", array=np.array([f"SIM{i:09d}" for i in range(n)])),
        fits.Column("SOURCE_ID", "K", array=np.arange(n)),
        fits.Column("RA", "D", unit="deg", array=np.degrees(sky.ra_rad)),
        fits.Column("DEC", "D", unit="deg", array=np.degrees(sky.dec_rad)),
        fits.Column("S_INT", "D", unit="Jy", array=sky.stokes_i_jy),
        fits.Column("S_PEAK", "D", unit="Jy/beam", array=sky.stokes_i_jy),
        fits.Column("S_INT_Q", "D", unit="Jy", array=sky.stokes_q_jy),
        fits.Column("S_INT_U", "D", unit="Jy", array=sky.stokes_u_jy),
        fits.Column("S_INT_V", "D", unit="Jy", array=sky.stokes_v_jy),
        fits.Column("NU_EFF", "D", unit="Hz", array=ref_hz),
        fits.Column("SPEC_INDX", "D", array=alpha),
        fits.Column("IM_MAJ", "D", unit="deg", array=major),
        fits.Column("IM_MIN", "D", unit="deg", array=minor),
        fits.Column("IM_PA", "D", unit="deg", array=pa),
        fits.Column("DC_MAJ", "D", unit="deg", array=major),
        fits.Column("DC_MIN", "D", unit="deg", array=minor),
        fits.Column("DC_PA", "D", unit="deg", array=pa),
        fits.Column("PB_GAIN", vector, array=gain.T),
        fits.Column("S_APP", vector, unit="Jy", array=apparent.T),
        fits.Column("S_APP_MEAN", "D", unit="Jy", array=apparent.mean(axis=0)),
        fits.Column("PC_DIST", "D", unit="deg", array=np.degrees(sky.angular_distance_rad(obs.ra_rad, obs.dec_rad))),
        fits.Column("LINE_FLUX", "D", unit="Jy Hz", array=sky.line_flux_jy_hz),
        fits.Column("LINE_FLUX_KMS", "D", unit="Jy km/s", array=sky.line_flux_jy_hz / per_kms),
        fits.Column("LINE_FREQ", "D", unit="Hz", array=sky.line_freq_hz),
        fits.Column("LINE_Z_HI", "D", array=np.where(has_line, HI_REST_FREQ_HZ / safe_freq - 1.0, 0.0)),
        fits.Column("LINE_W20", "D", unit="Hz", array=sky.line_w20_hz),
        fits.Column("LINE_W20_KMS", "D", unit="km/s", array=sky.line_w20_hz / per_kms),
        fits.Column("LINE_SIG", "D", unit="Hz", array=sky.line_sigma_hz),
        fits.Column("LINE_S_APP", "D", unit="Jy Hz", array=line_apparent),
    ]


@dataclass(frozen=True)
class TruthContext:
    """What the header states beyond the observation: identifiers and the sky filter."""

    obs_id: str
    telescope_name: str
    filter_radius_rad: float
    settings: dict


def write_truth(path: Path, obs: Observation, context: TruthContext) -> Path:
    """Write the truth catalogue of `obs` (its sky after the field filter) to `path`."""
    table = fits.BinTableHDU.from_columns(_columns(obs), name=EXTNAME)
    head = table.header
    start = Time((obs.times_s[0] - obs.interval_s / 2) / 86400.0, format="mjd", scale="utc")
    end = Time((obs.times_s[-1] + obs.interval_s / 2) / 86400.0, format="mjd", scale="utc")
    cards = {
        "OBS_ID": (context.obs_id, "ObsCore obs_id of the run"),
        "TELESCOP": (context.telescope_name, "array simulated"),
        "ORIGIN": (f"srcnet-sim {__version__}", ""),
        "OBSRA": (float(np.degrees(obs.ra_rad)), "[deg] phase and pointing centre RA (J2000)"),
        "OBSDEC": (float(np.degrees(obs.dec_rad)), "[deg] phase and pointing centre Dec (J2000)"),
        "RADESYS": ("FK5", ""),
        "EQUINOX": (2000.0, ""),
        "DATE-OBS": (start.isot, "start of the observation (UTC)"),
        "DATE-END": (end.isot, "end of the observation (UTC)"),
        "MJD-OBS": (start.mjd, ""),
        "MJD-END": (end.mjd, ""),
        "FREQLO": (float(np.min(obs.freq_hz - obs.channel_width_hz / 2)), "[Hz] lower band edge"),
        "FREQHI": (float(np.max(obs.freq_hz + obs.channel_width_hz / 2)), "[Hz] upper band edge"),
        "NCHAN": (len(obs.freq_hz), "channels of S_APP and PB_GAIN"),
        "CHAN0": (float(obs.freq_hz[0]), "[Hz] centre of channel 0"),
        "CHANINC": (float(obs.freq_hz[1] - obs.freq_hz[0]) if len(obs.freq_hz) > 1 else obs.channel_width_hz,
                    "[Hz] channel k is centred at CHAN0 + k CHANINC"),
        "CHANWID": (float(obs.channel_width_hz), "[Hz] channel width"),
        "FILTRAD": (float(np.degrees(context.filter_radius_rad)), "[deg] sources kept within this of the centre"),
        "PBMODEL": (obs.beam, "primary beam model"),
        **beam_parameters(obs.beam),
        "PBRULE": (TURNING_GAIN_RULE if obs.rotating_beams else GAIN_RULE, "PB_GAIN"),
        "NOISE": ("on" if obs.noise else "off", "thermal noise simulated"),
        "SMEARING": (obs.smearing, "smearing simulated (not in S_APP)"),
        "SEED": (int(obs.seed), "seed of every random draw"),
    }
    for key, (value, comment) in cards.items():
        head[key] = (value, comment)
    head.add_history("settings " + json.dumps(context.settings, sort_keys=True))
    partial = path.with_name(f".{path.name}.partial")
    try:
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(partial, overwrite=True)
        partial.rename(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Reference:
    """Sources to compare an image with: positions (deg), the flux an image should show (Jy), shapes (deg).

    apparent: True when flux_jy is the apparent (primary-beam) flux of a truth catalogue; False when it is
    the intrinsic Stokes I of another catalogue at the image's frequency.
    noise_simulated: the truth header's NOISE (None when the catalogue does not say).
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    major_deg: np.ndarray
    apparent: bool
    noise_simulated: bool | None


def read_catalogue_as_truth(path: Path):
    """The SkyModel of a catalogue file SKY_MODEL reads, given as a QA truth: its errors name TRUTH."""
    from srcnet_sim.sky.catalogues import read_catalogue

    try:
        return read_catalogue(path)
    except UserInputError as exc:
        raise UserInputError("TRUTH", str(exc).split(": ", 1)[-1]) from exc


def truth_table(path: Path) -> tuple[fits.FITS_rec, fits.Header] | None:
    """The data and header of the truth table (HDU EXTNAME) when `path` is a srcnet-sim truth file, else None (not
    FITS, or FITS without that table: a catalogue for read_catalogue_as_truth, whose readers say what is wrong)."""
    path = Path(path)
    if path.suffix.lower() not in (".fits", ".fit"):
        return None
    try:
        with fits.open(path) as hdul:
            if EXTNAME in hdul:
                return hdul[EXTNAME].data.copy(), hdul[EXTNAME].header.copy()
    except OSError:
        pass
    return None


def read_reference(path: Path, freq_hz: float) -> Reference:
    """Read a truth catalogue (S_APP_MEAN) or any catalogue srcnet-sim reads (intrinsic flux at freq_hz)."""
    table = truth_table(path)
    if table is not None:
        data, head = table
        return Reference(ra_deg=np.asarray(data["RA"], dtype=float), dec_deg=np.asarray(data["DEC"], dtype=float),
                         flux_jy=np.asarray(data["S_APP_MEAN"], dtype=float),
                         major_deg=np.asarray(data["DC_MAJ"], dtype=float), apparent=True,
                         noise_simulated=head.get("NOISE") == "on")
    sky = read_catalogue_as_truth(path)
    flux = sky.stokes_at(np.array([freq_hz]))[0, 0]
    return Reference(ra_deg=np.degrees(sky.ra_rad), dec_deg=np.degrees(sky.dec_rad), flux_jy=flux,
                     major_deg=np.degrees(sky.major_fwhm_rad), apparent=False, noise_simulated=None)
