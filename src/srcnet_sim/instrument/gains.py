"""Direction-independent corruptions of each dish: complex gains drifting in time, a bandpass and leakage.

Each dish p and feed x (X or Y) has the Jones matrix J_p(t, nu) = B_p(nu) G_p(t) D_p (CASA's order: the
leakage D nearest the sky), and a visibility becomes V_pq <- J_p V_pq J_q^H:

- G: g_px(t) = g0_px exp(amp_drift f_px(t)) exp(i phase_drift f'_px(t)), with a constant part
  g0 = exp(amp_std z) exp(i phase_std z') drawn once per dish and feed (z, z' standard normal; the amplitude is
  log-normal, so it is never negative, and amp_std is its fractional rms for small values), and f, f'
  independent stationary Gaussian processes of unit variance with a squared-exponential correlation
  exp(-dt^2 / (2 corr_time^2)), drawn as random Fourier features: f(t) = sqrt(2/J) sum_j cos(w_j t + phi_j),
  w_j ~ N(0, 1/corr_time^2), phi_j ~ U[0, 2 pi) (Rahimi & Recht 2007), J = DRIFT_FEATURES.
  These are Karabo's G0_std, Gt_std_amp, Gt_std_phase and Gt_corr_* in SI units.
- B: b_px(nu) = exp(sum_k a_k P_k(x)) exp(i sum_k c_k P_k(x)), Legendre polynomials P_1..P_3 of
  x = 2 (nu - nu_lo) / (nu_hi - nu_lo) - 1 across the observation's band, a_k, c_k ~ N(0, ripple): a smooth
  ripple of fractional amplitude and phase (rad) `ripple`, unity at no ripple.
- D: [[1, d_px], [d_py, 1]], d complex Gaussian with rms leakage_std per component; constant in time and
  frequency.

Every draw comes from one generator seeded by (SEED, GAIN_STREAM), before any block exists, and a gain is
evaluated one time step at a time with the same array operations, so a visibility gets the same corruption
(bit for bit) whatever block, executor or worker computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

GAIN_STREAM = 0x6761696E  # "gain": the seed stream of the gains, apart from the sky's and the noise's
DRIFT_FEATURES = 128  # random Fourier features per process: the sample variance is within ~10 % of 1
BANDPASS_ORDER = 3  # Legendre P_1 .. P_3


@dataclass(frozen=True)
class GainParameters:
    """What GAINS=on draws from: amp_std (log-amplitude rms), phase_std_rad, amp_drift (log-amplitude rms of the
    drift), phase_drift_rad, corr_time_s (the drifts' correlation time), bandpass_ripple (rms of each Legendre
    coefficient, fractional amplitude and rad), leakage_std (rms of each real component of a D-term)."""

    amp_std: float
    phase_std_rad: float
    amp_drift: float
    phase_drift_rad: float
    corr_time_s: float
    bandpass_ripple: float
    leakage_std: float


@dataclass(frozen=True)
class DishGains:
    """The drawn gains of every dish and feed (feed axis: X, Y), evaluated at any time and frequency.

    Attributes:
        parameters: what they were drawn from.
        g0: (n_dish, 2) complex constant gains.
        drift_omega_rad_s, drift_phase_rad: (2, n_dish, 2, DRIFT_FEATURES) the Fourier features of the amplitude
            (index 0) and phase (index 1) drifts.
        bandpass_coeff: (2, n_dish, 2, BANDPASS_ORDER) Legendre coefficients of P_1.. of the log amplitude (0) and
            the phase (1).
        leakage: (n_dish, 2) complex D-terms d_px, d_py.
        t0_s: the drifts' time origin, MJD seconds UTC (the first sample).
        band_hz: (lowest, highest) channel centre of the observation: the bandpass's x = -1 .. 1.
    """

    parameters: GainParameters
    g0: np.ndarray
    drift_omega_rad_s: np.ndarray
    drift_phase_rad: np.ndarray
    bandpass_coeff: np.ndarray
    leakage: np.ndarray
    t0_s: float
    band_hz: tuple[float, float]

    @classmethod
    def draw(cls, parameters: GainParameters, n_dish: int, seed: int, t0_s: float,
             band_hz: tuple[float, float]) -> "DishGains":
        """Draw the gains of `n_dish` dishes from SEED `seed` (every draw here, in a fixed order)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, GAIN_STREAM]))
        p = parameters
        g0 = np.exp(p.amp_std * rng.standard_normal((n_dish, 2)) + 1j * p.phase_std_rad * rng.standard_normal((n_dish, 2)))
        omega = rng.standard_normal((2, n_dish, 2, DRIFT_FEATURES)) / p.corr_time_s
        phase = rng.uniform(0.0, 2.0 * np.pi, (2, n_dish, 2, DRIFT_FEATURES))
        coeff = p.bandpass_ripple * rng.standard_normal((2, n_dish, 2, BANDPASS_ORDER))
        leakage = p.leakage_std * (rng.standard_normal((n_dish, 2)) + 1j * rng.standard_normal((n_dish, 2)))
        return cls(p, g0, omega, phase, coeff, leakage, float(t0_s), (float(band_hz[0]), float(band_hz[1])))

    @property
    def n_dish(self) -> int:
        return self.g0.shape[0]

    def drifts(self, time_s: float) -> np.ndarray:
        """(2, n_dish, 2) the unit-variance processes f (amplitude, index 0) and f' (phase, index 1) at `time_s`."""
        argument = self.drift_omega_rad_s * (time_s - self.t0_s) + self.drift_phase_rad
        return np.sqrt(2.0 / DRIFT_FEATURES) * np.cos(argument).sum(axis=-1)

    def gain(self, time_s: float) -> np.ndarray:
        """(n_dish, 2) complex G of each dish and feed at `time_s` (MJD seconds UTC)."""
        f = self.drifts(time_s)
        p = self.parameters
        return self.g0 * np.exp(p.amp_drift * f[0] + 1j * p.phase_drift_rad * f[1])

    def bandpass(self, freq_hz: np.ndarray) -> np.ndarray:
        """(n_dish, n_chan, 2) complex B of each dish, channel and feed."""
        lo, hi = self.band_hz
        x = np.zeros(len(freq_hz)) if hi <= lo else 2.0 * (np.asarray(freq_hz, dtype=np.float64) - lo) / (hi - lo) - 1.0
        basis = np.stack([legendre.legval(x, np.eye(BANDPASS_ORDER + 1)[k]) for k in range(1, BANDPASS_ORDER + 1)])
        log_amp = np.einsum("dxk,kc->dcx", self.bandpass_coeff[0], basis)
        phase = np.einsum("dxk,kc->dcx", self.bandpass_coeff[1], basis)
        return np.exp(log_amp + 1j * phase)

    def jones(self, time_s: float, freq_hz: np.ndarray) -> np.ndarray:
        """(n_dish, n_chan, 2, 2) complex128 J = B G D of each dish and channel at `time_s`."""
        bg = self.bandpass(freq_hz) * self.gain(time_s)[:, None, :]  # (n_dish, n_chan, 2)
        jones = np.empty(bg.shape + (2,), dtype=np.complex128)
        jones[..., 0, 0] = bg[..., 0]
        jones[..., 0, 1] = bg[..., 0] * self.leakage[:, None, 0]
        jones[..., 1, 0] = bg[..., 1] * self.leakage[:, None, 1]
        jones[..., 1, 1] = bg[..., 1]
        return jones
