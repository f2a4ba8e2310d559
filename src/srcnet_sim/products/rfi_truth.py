"""The truth of RFI=on as FITS: the emitters in the band (HDU EMITTERS) and when and where each transmits (HDU MASK).

MASK is an (n_time, n_chan) uint32 image: bit e of pixel (t, k) is set when emitter e (row e of EMITTERS)
transmits at time step t into channel k. Which baselines see it above the noise depends on the geometry
(instrument.rfi); the MS's FLAG column holds what the flagger caught. Memory: one uint32 per (time, channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from srcnet_sim import __version__
from srcnet_sim.constants import SECONDS_PER_DAY
from srcnet_sim.simulate.observation import Observation

MASK_EXTNAME, EMITTERS_EXTNAME = "MASK", "EMITTERS"


def rfi_mask(obs: Observation) -> np.ndarray:
    """(n_time, n_chan) uint32 bits of the emitters transmitting into each channel at each time step."""
    emitters = obs.rfi.emitters
    inside = emitters.overlap(obs.freq_hz, obs.channel_width_hz) > 0  # (n_emit, n_chan)
    bits = (np.uint32(1) << np.arange(emitters.n_emit, dtype=np.uint32))[:, None]
    mask = np.zeros((len(obs.times_s), len(obs.freq_hz)), dtype=np.uint32)
    for t, time_s in enumerate(obs.times_s):
        on = inside & emitters.active(float(time_s))[:, None]
        mask[t] = np.bitwise_or.reduce(np.where(on, bits, np.uint32(0)), axis=0)
    return mask


def write_rfi_truth(path: Path, obs: Observation, obs_id: str) -> Path:
    """Write the RFI truth of `obs` (which has RFI) to `path`."""
    emitters = obs.rfi.emitters
    start = Time((obs.times_s[0] - obs.interval_s / 2) / SECONDS_PER_DAY, format="mjd", scale="utc")
    end = Time((obs.times_s[-1] + obs.interval_s / 2) / SECONDS_PER_DAY, format="mjd", scale="utc")
    header = fits.Header()
    for key, value, comment in (
            ("OBS_ID", obs_id, ""), ("ORIGIN", f"srcnet-sim {__version__}", ""),
            ("OBSRA", float(np.degrees(obs.ra_rad)), "[deg] phase centre RA (J2000)"),
            ("OBSDEC", float(np.degrees(obs.dec_rad)), "[deg] phase centre Dec (J2000)"),
            ("MJD-OBS", start.mjd, ""), ("MJD-END", end.mjd, ""),
            ("FREQLO", float(np.min(obs.freq_hz - obs.channel_width_hz / 2)), "[Hz] lower band edge"),
            ("FREQHI", float(np.max(obs.freq_hz + obs.channel_width_hz / 2)), "[Hz] upper band edge"),
            ("NCHAN", len(obs.freq_hz), ""), ("NTIME", len(obs.times_s), ""),
            ("FLAGSIG", float(obs.rfi_flag_sigma), "flagger threshold, radiometer sigma"),
            ("FILTRAD", 90.0, "[deg] RFI comes from the whole sky above the horizon")):
        header[key] = (value, comment)
    mask = fits.ImageHDU(rfi_mask(obs), name=MASK_EXTNAME)
    mask.header["BUNIT"] = ("", "bit e: emitter e (EMITTERS row e) transmits in (time step, channel)")
    table = fits.BinTableHDU.from_columns([
        fits.Column("NAME", "24A", array=np.array(emitters.names)),
        fits.Column("KIND", "12A", array=np.array(emitters.kinds)),
        fits.Column("FREQ_LO", "D", unit="Hz", array=emitters.band_hz[:, 0]),
        fits.Column("FREQ_HI", "D", unit="Hz", array=emitters.band_hz[:, 1]),
        fits.Column("S_APP", "D", unit="Jy", array=emitters.flux_jy),
        fits.Column("AZ0", "D", unit="deg", array=np.degrees(emitters.az0_rad)),
        fits.Column("EL0", "D", unit="deg", array=np.degrees(emitters.el0_rad)),
        fits.Column("AZ_RATE", "D", unit="deg/s", array=np.degrees(emitters.az_rate_rad_s)),
        fits.Column("EL_RATE", "D", unit="deg/s", array=np.degrees(emitters.el_rate_rad_s)),
    ], name=EMITTERS_EXTNAME)
    fits.HDUList([fits.PrimaryHDU(header=header), table, mask]).writeto(path)
    return path
