"""Radio-frequency interference of SKA-Mid's bands: seeded emitters, their visibilities and their true mask.

Emitters of three kinds, with the bands they transmit in (ITU allocations and the systems' interface documents):
- satellites (GNSS: GPS L1/L2/L5, Galileo E1/E5/E6, GLONASS L1/L2, BeiDou B1/B2/B3), SATELLITES_PER_BAND per band,
  each moving across the sky at MEO rates (about 0.5 deg/min), transmitting continuously;
- aircraft (DME interrogators, 1025-1150 MHz, a 1 MHz channel each), AIRCRAFT of them, 0.5-5 deg above the
  horizon, drifting slowly, in range (transmitting) in AIRCRAFT_WINDOW_S windows with probability AIRCRAFT_DUTY;
- ground transmitters (GSM 900 downlink, 925-960 MHz, a 200 kHz carrier each), GROUND of them, 0.1-1 deg
  above the horizon at a fixed azimuth, transmitting continuously.

Each has a flat spectrum over its band and an apparent flux density (what the dishes' sidelobes pass, Jy) drawn
log-uniformly in its kind's range (FLUX_RANGE_JY: order-of-magnitude estimates, docs/physics.md). An emitter is
in the far field; its visibility on baseline (p, q) is
    V_pq = S exp(2 pi i nu (tau_p - tau_q)) sinc(dnu (tau_p - tau_q)) sinc(nu dt d(tau_p - tau_q)/dt),
tau_p = ((x_p - x_0) . s - w_p) / c the delay of dish p after the correlator's delay tracking towards the phase
centre (x_p its ITRF position, x_0 the array centroid, s the emitter's ITRF unit direction, w_p the dish's w), so
that the channel width and the integration decorrelate it (sinc(x) = sin(pi x) / (pi x)) and short baselines see
it most. It is unpolarised: XX = YY = V, XY = YX = 0.

Every draw comes from one generator seeded by (SEED, RFI_STREAM) before any block exists, and an aircraft's
windows from (SEED, RFI_STREAM, emitter, window), so a visibility gets the same RFI whatever block computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S

RFI_STREAM = 0x726669  # "rfi"
EARTH_ROTATION_RAD_S = 7.2921150e-5
MHZ = 1e6
# (system, lowest Hz, highest Hz): the main lobes of the signals' spectra.
SATELLITE_BANDS = (
    ("GPS L5", 1164.45 * MHZ, 1188.45 * MHZ), ("GPS L2", 1217.37 * MHZ, 1237.83 * MHZ),
    ("GPS L1", 1565.19 * MHZ, 1585.65 * MHZ), ("Galileo E5", 1164.0 * MHZ, 1215.0 * MHZ),
    ("Galileo E6", 1260.0 * MHZ, 1300.0 * MHZ), ("Galileo E1", 1559.0 * MHZ, 1591.0 * MHZ),
    ("GLONASS L2", 1242.9 * MHZ, 1248.6 * MHZ), ("GLONASS L1", 1598.0 * MHZ, 1606.0 * MHZ),
    ("BeiDou B2", 1166.22 * MHZ, 1217.37 * MHZ), ("BeiDou B3", 1258.52 * MHZ, 1278.52 * MHZ),
    ("BeiDou B1", 1559.05 * MHZ, 1563.15 * MHZ),
)
DME_BAND = (1025.0 * MHZ, 1150.0 * MHZ)
DME_CHANNEL_HZ = 1.0 * MHZ
GSM_BAND = (925.0 * MHZ, 960.0 * MHZ)
GSM_CARRIER_HZ = 0.2 * MHZ
SATELLITES_PER_BAND = 2
AIRCRAFT = 4
GROUND = 3
AIRCRAFT_WINDOW_S = 600.0
AIRCRAFT_DUTY = 0.4
FLUX_RANGE_JY = {"satellite": (0.05, 20.0), "aircraft": (100.0, 1.0e4), "ground": (10.0, 1.0e3)}
ELEVATION_RANGE_DEG = {"satellite": (15.0, 75.0), "aircraft": (0.5, 5.0), "ground": (0.1, 1.0)}
RATE_RANGE_DEG_S = {"satellite": 0.5 / 60, "aircraft": 0.05 / 60, "ground": 0.0}  # rms of the az and el rates
KINDS = ("satellite", "aircraft", "ground")


@dataclass(frozen=True)
class Emitters:
    """The drawn emitters (n_emit of them), in drawing order: satellites, aircraft, ground.

    Attributes:
        names: (n_emit,) system and number, e.g. "GPS L1 #1".
        kinds: (n_emit,) "satellite", "aircraft" or "ground".
        band_hz: (n_emit, 2) lowest and highest frequency of the transmission.
        flux_jy: (n_emit,) apparent flux density, Jy (flat over the band).
        az0_rad, el0_rad: (n_emit,) azimuth (north through east) and elevation at t0_s.
        az_rate_rad_s, el_rate_rad_s: (n_emit,) their rates (elevation reflected inside its kind's range).
        t0_s: MJD seconds UTC of the first sample; seed: the run's SEED (aircraft windows).
        ids: (n_emit,) each emitter's place in the full draw (which seeds an aircraft's windows).
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    band_hz: np.ndarray
    flux_jy: np.ndarray
    az0_rad: np.ndarray
    el0_rad: np.ndarray
    az_rate_rad_s: np.ndarray
    el_rate_rad_s: np.ndarray
    t0_s: float
    seed: int
    ids: np.ndarray

    @classmethod
    def draw(cls, seed: int, t0_s: float) -> "Emitters":
        """Every emitter of every kind (whatever the band observed: the draws do not depend on it)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, RFI_STREAM]))
        emitters = [(f"{system} #{k + 1}", "satellite", (low, high))
                    for system, low, high in SATELLITE_BANDS for k in range(SATELLITES_PER_BAND)]
        for system, kind, count, (low, high), width in (("DME", "aircraft", AIRCRAFT, DME_BAND, DME_CHANNEL_HZ),
                                                         ("GSM 900", "ground", GROUND, GSM_BAND, GSM_CARRIER_HZ)):
            for k in range(count):
                centre = rng.uniform(low + width / 2, high - width / 2)
                emitters.append((f"{system} #{k + 1}", kind, (centre - width / 2, centre + width / 2)))
        names, kinds, bands = (list(column) for column in zip(*emitters, strict=True))
        n = len(names)
        kind = np.array(kinds)
        low_flux = np.array([FLUX_RANGE_JY[k][0] for k in kinds])
        high_flux = np.array([FLUX_RANGE_JY[k][1] for k in kinds])
        flux = np.exp(rng.uniform(np.log(low_flux), np.log(high_flux)))
        low_el = np.radians([ELEVATION_RANGE_DEG[k][0] for k in kinds])
        high_el = np.radians([ELEVATION_RANGE_DEG[k][1] for k in kinds])
        el0 = rng.uniform(low_el, high_el)
        az0 = rng.uniform(0.0, 2 * np.pi, n)
        rate = np.radians([RATE_RANGE_DEG_S[k] for k in kinds])
        az_rate, el_rate = rate * rng.standard_normal(n), rate * rng.standard_normal(n)
        el_rate[kind != "satellite"] = 0.0  # aircraft keep their height above the horizon, towers stand still
        return cls(tuple(names), tuple(kinds), np.array(bands), flux, az0, el0, az_rate, el_rate, float(t0_s), seed,
                   np.arange(n))

    @property
    def n_emit(self) -> int:
        return len(self.names)

    def select(self, keep: np.ndarray) -> "Emitters":
        """The emitters where `keep` (n_emit,) is true."""
        index = np.flatnonzero(keep)
        return Emitters(tuple(self.names[i] for i in index), tuple(self.kinds[i] for i in index),
                        self.band_hz[index], self.flux_jy[index], self.az0_rad[index], self.el0_rad[index],
                        self.az_rate_rad_s[index], self.el_rate_rad_s[index], self.t0_s, self.seed, self.ids[index])

    def in_band(self, freq_hz: np.ndarray, channel_width_hz: float) -> np.ndarray:
        """(n_emit,) whether each emitter transmits inside the observed channels."""
        return self.overlap(freq_hz, channel_width_hz).any(axis=1)

    def overlap(self, freq_hz: np.ndarray, channel_width_hz: float) -> np.ndarray:
        """(n_emit, n_chan) fraction of each channel the emitter's band covers (0..1)."""
        low = np.asarray(freq_hz)[None, :] - channel_width_hz / 2
        high = np.asarray(freq_hz)[None, :] + channel_width_hz / 2
        covered = np.minimum(high, self.band_hz[:, 1:2]) - np.maximum(low, self.band_hz[:, 0:1])
        return np.clip(covered / channel_width_hz, 0.0, 1.0)

    def active(self, time_s: float) -> np.ndarray:
        """(n_emit,) whether each emitter transmits at `time_s`: aircraft by their seeded windows, others always."""
        window = int(np.floor((time_s - self.t0_s) / AIRCRAFT_WINDOW_S))
        on = np.ones(self.n_emit, dtype=bool)
        for e, kind in enumerate(self.kinds):
            if kind == "aircraft":
                draw = np.random.default_rng([self.seed, RFI_STREAM, int(self.ids[e]), window + 2**31]).random()
                on[e] = draw < AIRCRAFT_DUTY
        return on

    def azel(self, time_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_emit,) azimuth and elevation at `time_s`, rad (elevation reflected inside its kind's range), and the
        elevation's rate there, rad/s."""
        dt = time_s - self.t0_s
        low = np.radians([ELEVATION_RANGE_DEG[k][0] for k in self.kinds])
        high = np.radians([ELEVATION_RANGE_DEG[k][1] for k in self.kinds])
        span = high - low
        phase = np.mod(self.el0_rad - low + self.el_rate_rad_s * dt, 2 * span)
        el = low + np.where(phase > span, 2 * span - phase, phase)
        el_rate = np.where(phase > span, -self.el_rate_rad_s, self.el_rate_rad_s)
        return np.mod(self.az0_rad + self.az_rate_rad_s * dt, 2 * np.pi), el, el_rate


def enu_basis(lon_rad: float, lat_rad: float) -> np.ndarray:
    """(3, 3) rows: the ITRF unit vectors east, north and up at a geodetic longitude and latitude."""
    sl, cl, sp, cp = np.sin(lon_rad), np.cos(lon_rad), np.sin(lat_rad), np.cos(lat_rad)
    return np.array([[-sl, cl, 0.0], [-sp * cl, -sp * sl, cp], [cp * cl, cp * sl, sp]])


@dataclass(frozen=True)
class RfiModel:
    """The emitters of a run and the array geometry their visibilities need.

    Attributes:
        emitters: the drawn emitters (only those inside the observed band are kept).
        relative_itrf_m: (n_dish, 3) dish positions minus their centroid, ITRF, m (the origin of dish_uvw).
        enu: (3, 3) east, north, up at the array's site (enu_basis).
        dec_rad: the phase centre's declination (the rate of w: dw/dt = -omega_E cos(dec) u).
    """

    emitters: Emitters
    relative_itrf_m: np.ndarray
    enu: np.ndarray
    dec_rad: float

    def directions(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(n_emit, 3) ITRF unit directions of the emitters at `time_s`, and (n_emit, 3) their rates (1/s)."""
        az, el, el_rate = self.emitters.azel(time_s)
        az_rate = self.emitters.az_rate_rad_s
        local = np.stack([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)], axis=-1)
        d_az = np.stack([np.cos(az) * np.cos(el), -np.sin(az) * np.cos(el), np.zeros_like(az)], axis=-1)
        d_el = np.stack([-np.sin(az) * np.sin(el), -np.cos(az) * np.sin(el), np.cos(el)], axis=-1)
        rate = d_az * az_rate[:, None] + d_el * el_rate[:, None]
        return local @ self.enu, rate @ self.enu

    def delays(self, time_s: float, dish_uvw_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n_dish, n_emit) each dish's delay of each emitter after delay tracking towards the phase centre, s, and
        its rate, s/s: tau_p = ((x_p - x_0) . s - w_p) / c, with dw_p/dt = -omega_E cos(dec) u_p.

        dish_uvw_m: (n_dish, 3) per-dish UVW of the step (simulate.geometry.dish_uvw), m."""
        direction, direction_rate = self.directions(time_s)
        w_rate = -EARTH_ROTATION_RAD_S * np.cos(self.dec_rad) * dish_uvw_m[:, 0]
        tau = (self.relative_itrf_m @ direction.T - dish_uvw_m[:, 2:3]) / SPEED_OF_LIGHT_M_S
        tau_rate = (self.relative_itrf_m @ direction_rate.T - w_rate[:, None]) / SPEED_OF_LIGHT_M_S
        return tau, tau_rate

    def visibilities(self, time_s: float, dish_uvw_m: np.ndarray, freq_hz: np.ndarray, channel_width_hz: float,
                     interval_s: float, ant1: np.ndarray, ant2: np.ndarray) -> np.ndarray | None:
        """(n_bl, n_chan) complex128 RFI of one time step (each of XX and YY), or None when no emitter transmits
        in these channels at `time_s`.

        Args:
            dish_uvw_m: (n_dish, 3) per-dish UVW of the step (simulate.geometry.dish_uvw), m.
            freq_hz: (n_chan,) channel centres; channel_width_hz, interval_s: the averaging that decorrelates.
        """
        overlap = self.emitters.overlap(freq_hz, channel_width_hz) * self.emitters.active(time_s)[:, None]
        if not overlap.any():
            return None
        tau, tau_rate = self.delays(time_s, dish_uvw_m)
        vis = np.zeros((len(ant1), len(freq_hz)), dtype=np.complex128)
        for e in np.flatnonzero(overlap.any(axis=1)):
            delay = tau[ant1, e] - tau[ant2, e]
            delay_rate = tau_rate[ant1, e] - tau_rate[ant2, e]
            bandwidth = np.sinc(channel_width_hz * delay)
            for k in np.flatnonzero(overlap[e]):
                nu = freq_hz[k]
                weight = self.emitters.flux_jy[e] * overlap[e, k] * bandwidth * np.sinc(nu * interval_s * delay_rate)
                vis[:, k] += weight * np.exp(2j * np.pi * nu * delay)
        return vis
