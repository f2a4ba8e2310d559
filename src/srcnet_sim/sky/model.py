"""SkyModel: a catalogue of point and Gaussian sources, with continuum and spectral lines, as plain arrays
(SI units inside)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from srcnet_sim.sky.lines import channel_line_flux, line_support_hz


@dataclass(frozen=True)
class SkyModel:
    """Sources as (n_src,) float64 arrays.

    Attributes:
        ra_rad, dec_rad: J2000 position, radians.
        stokes_i_jy, stokes_q_jy, stokes_u_jy, stokes_v_jy: flux density at ref_freq_hz, Jy.
        ref_freq_hz: reference frequency of the fluxes, Hz (0 = flat spectrum).
        spectral_index: alpha in S(f) = S(ref) (f / ref)^alpha.
        major_fwhm_rad, minor_fwhm_rad: Gaussian FWHM, radians (0 = point source).
        position_angle_rad: major-axis position angle, east of north, radians.
        line_flux_jy_hz: integrated flux of the source's line in Stokes I, Jy Hz (0 = no line).
        line_freq_hz: observed centre frequency of the line, Hz.
        line_w20_hz: full width of the line at 20 % of its peak, Hz (observed frame).
        line_sigma_hz: 0 for a Gaussian line; > 0 for a rotating disc's double-horned profile whose gas has
            this dispersion, Hz (sky.lines).
    """

    ra_rad: np.ndarray
    dec_rad: np.ndarray
    stokes_i_jy: np.ndarray
    stokes_q_jy: np.ndarray
    stokes_u_jy: np.ndarray
    stokes_v_jy: np.ndarray
    ref_freq_hz: np.ndarray
    spectral_index: np.ndarray
    major_fwhm_rad: np.ndarray
    minor_fwhm_rad: np.ndarray
    position_angle_rad: np.ndarray
    line_flux_jy_hz: np.ndarray
    line_freq_hz: np.ndarray
    line_w20_hz: np.ndarray
    line_sigma_hz: np.ndarray

    @classmethod
    def from_columns(cls, ra_rad: np.ndarray, dec_rad: np.ndarray, stokes_i_jy: np.ndarray, **optional: np.ndarray) -> "SkyModel":
        """Build a model from the required columns; missing optional columns are zero."""
        n = len(np.atleast_1d(ra_rad))
        columns = {"ra_rad": ra_rad, "dec_rad": dec_rad, "stokes_i_jy": stokes_i_jy, **optional}
        values = {}
        for field in fields(cls):
            column = columns.pop(field.name, None)
            values[field.name] = np.zeros(n) if column is None else np.broadcast_to(np.asarray(column, dtype=np.float64), (n,)).copy()
        if columns:
            raise TypeError(f"unknown sky model columns: {sorted(columns)}")
        return cls(**values)

    def first_problem(self, freq_hz: np.ndarray | None = None) -> str | None:
        """What is wrong with the first bad source (non-finite value, impossible position or shape), or None.

        freq_hz: the observed channels; when given, the fluxes extrapolated to them must stay finite too.
        Sources are numbered from 1 (#1) in the order they were read.
        """
        for field in fields(self):
            bad = np.flatnonzero(~np.isfinite(getattr(self, field.name)))
            if bad.size:
                return f"source #{bad[0] + 1} has {field.name} = {getattr(self, field.name)[bad[0]]}; every value must be finite"
        checks = (("dec_rad", np.abs(self.dec_rad) > np.pi / 2, "declinations lie within -90..90 deg"),
                  ("ref_freq_hz", self.ref_freq_hz < 0, "reference frequencies are >= 0 Hz (0: flat spectrum)"),
                  ("major_fwhm_rad", self.major_fwhm_rad < 0, "Gaussian sizes are >= 0"),
                  ("minor_fwhm_rad", self.minor_fwhm_rad < 0, "Gaussian sizes are >= 0"),
                  ("line_freq_hz", (self.line_flux_jy_hz != 0) & (self.line_freq_hz <= 0), "a line's frequency is > 0 Hz"),
                  ("line_w20_hz", (self.line_flux_jy_hz != 0) & (self.line_w20_hz <= 0), "a line's W20 is > 0 Hz"),
                  ("line_sigma_hz", self.line_sigma_hz < 0, "a line's dispersion is >= 0 Hz (0: Gaussian)"))
        for name, wrong, allowed in checks:
            bad = np.flatnonzero(wrong)
            if bad.size:
                return f"source #{bad[0] + 1} has {name} = {getattr(self, name)[bad[0]]}; {allowed}"
        if freq_hz is not None and len(freq_hz):
            # |S(f)| is monotonic in f for each source: the band's edges bound every channel.
            edges = np.array([np.min(freq_hz), np.max(freq_hz)])
            peak = np.max(np.abs([self.stokes_i_jy, self.stokes_q_jy, self.stokes_u_jy, self.stokes_v_jy]), axis=0)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                ratio = np.where(self.ref_freq_hz > 0, edges[:, None] / np.where(self.ref_freq_hz > 0, self.ref_freq_hz, 1), 1.0)
                bad = np.flatnonzero(~np.all(np.isfinite(ratio**self.spectral_index * peak), axis=0))
            if bad.size:
                return (f"source #{bad[0] + 1} (spectral_index {self.spectral_index[bad[0]]:g}, ref_freq_hz "
                        f"{self.ref_freq_hz[bad[0]]:g}) has a non-finite flux density in the observed band")
        return None

    def __len__(self) -> int:
        return len(self.ra_rad)

    def select(self, mask: np.ndarray) -> "SkyModel":
        """A model holding the sources where `mask` is true (or the given indices)."""
        return SkyModel(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @property
    def is_gaussian(self) -> np.ndarray:
        """(n_src,) bool: true for resolved (Gaussian) sources."""
        return self.major_fwhm_rad > 0

    @property
    def is_polarised(self) -> bool:
        """True when any source has non-zero Q, U or V."""
        return bool(np.any(self.stokes_q_jy) or np.any(self.stokes_u_jy) or np.any(self.stokes_v_jy))

    def stokes_at(self, freq_hz: np.ndarray) -> np.ndarray:
        """(n_chan, 4, n_src) Stokes I, Q, U, V in Jy at each frequency (spectral index applied)."""
        freq_hz = np.asarray(freq_hz, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.ref_freq_hz > 0, freq_hz[:, None] / self.ref_freq_hz, 1.0)
        scale = ratio**self.spectral_index  # (n_chan, n_src)
        stokes = np.stack([self.stokes_i_jy, self.stokes_q_jy, self.stokes_u_jy, self.stokes_v_jy])
        return scale[:, None, :] * stokes[None, :, :]

    @property
    def has_lines(self) -> bool:
        """True when any source has a spectral line."""
        return bool(np.any(self.line_flux_jy_hz))

    def line_support_hz(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) (n_src,) frequencies outside which each source's line is 0 (lo > hi: no line)."""
        lo, hi = line_support_hz(self.line_freq_hz, self.line_w20_hz, self.line_sigma_hz)
        none = self.line_flux_jy_hz == 0
        return np.where(none, np.inf, lo), np.where(none, -np.inf, hi)

    def has_continuum(self) -> np.ndarray:
        """(n_src,) bool: true for sources with any continuum Stokes flux."""
        return (self.stokes_i_jy != 0) | (self.stokes_q_jy != 0) | (self.stokes_u_jy != 0) | (self.stokes_v_jy != 0)

    def channel_stokes(self, freq_hz: np.ndarray, width_hz: float) -> np.ndarray:
        """(n_chan, 4, n_src) Stokes I, Q, U, V (Jy) in channels of `width_hz` centred on freq_hz: the continuum at
        the centre (spectral index applied) plus, in I, each line's mean over the channel (sky.lines)."""
        stokes = self.stokes_at(freq_hz)
        if self.has_lines:
            stokes[:, 0, :] += channel_line_flux(self.line_flux_jy_hz, self.line_freq_hz, self.line_w20_hz,
                                                 self.line_sigma_hz, np.asarray(freq_hz, dtype=np.float64), width_hz)
        return stokes

    def angular_distance_rad(self, ra0_rad: float, dec0_rad: float) -> np.ndarray:
        """(n_src,) great-circle distance of each source from (ra0, dec0), radians."""
        cos_d = np.sin(self.dec_rad) * np.sin(dec0_rad) + np.cos(self.dec_rad) * np.cos(dec0_rad) * np.cos(self.ra_rad - ra0_rad)
        return np.arccos(np.clip(cos_d, -1.0, 1.0))

    def within(self, ra0_rad: float, dec0_rad: float, radius_rad: float) -> "SkyModel":
        """Sources no farther than radius_rad from (ra0, dec0)."""
        return self.select(self.angular_distance_rad(ra0_rad, dec0_rad) <= radius_rad)
