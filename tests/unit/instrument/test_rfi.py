"""RFI=on (instrument.rfi, simulate.flagger): the emitters' geometry against astropy and casacore, their bands,
block independence, and a flagged image as quiet as a clean one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import run_cli, write_csv_sky
from srcnet_sim.config import load_settings
from srcnet_sim.instrument import load_telescope
from srcnet_sim.instrument.rfi import EARTH_ROTATION_RAD_S, Emitters, RfiModel, enu_basis
from srcnet_sim.run.blocks import Block, compute_block
from srcnet_sim.run.plan import plan
from srcnet_sim.simulate import geometry

RA0, DEC0 = 150.12, 2.21
T_S = 58965.75 * 86400.0  # 2020-04-26T18:00 UTC, the phase centre well above the horizon
GNSS_BAND = {"START_FREQ_HZ": "1.55e9", "END_FREQ_HZ": "1.61e9", "FREQ_INC_HZ": "1e6"}


def _emitter_at(az_rad: float, el_rad: float) -> Emitters:
    """A still satellite (its kind keeps elevations of 15-75 deg) at (az, el)."""
    one = np.ones(1)
    return Emitters(("test",), ("satellite",), np.array([[1.0e9, 2.0e9]]), one, az_rad * one, el_rad * one, 0 * one,
                    0 * one, T_S, 0, np.arange(1))


def _model(emitters: Emitters, telescope) -> RfiModel:
    site = telescope.site
    return RfiModel(emitters, telescope.itrf_m - telescope.itrf_m.mean(axis=0),
                    enu_basis(np.radians(site.lon_deg), np.radians(site.lat_deg)), np.radians(DEC0))


def test_an_emitter_in_the_phase_centres_direction_has_no_delay_after_delay_tracking():
    """astropy's apparent azimuth and elevation of the phase centre (no refraction) put an emitter where casacore's
    w points: every dish's delay after tracking is zero, to the annual aberration (20.5", 1e-4 rad) of a baseline."""
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    telescope = load_telescope("SKA-MID-AA2")
    frame = AltAz(obstime=Time(T_S / 86400.0, format="mjd", scale="utc"), location=telescope.site.earth_location(),
                  pressure=0 * u.hPa)
    azel = SkyCoord(RA0 * u.deg, DEC0 * u.deg, frame="icrs").transform_to(frame)
    model = _model(_emitter_at(azel.az.rad, azel.alt.rad), telescope)
    dish_uvw = geometry.dish_uvw(telescope.itrf_m, np.array([T_S]), np.radians(RA0), np.radians(DEC0))[0]
    tau, _ = model.delays(T_S, dish_uvw)
    distance_m = np.linalg.norm(model.relative_itrf_m, axis=1)
    assert np.all(np.abs(tau[:, 0]) * 299_792_458.0 <= 1.2e-4 * distance_m + 1e-3)
    assert distance_m.max() > 10_000  # the check spans baselines of tens of km


def test_the_rate_of_w_is_earth_rotation_as_casacore_computes_it():
    telescope = load_telescope("SKA-MID-AA2")
    ra, dec = np.radians(RA0), np.radians(DEC0)
    around = geometry.dish_uvw(telescope.itrf_m, np.array([T_S - 1.0, T_S + 1.0]), ra, dec)
    now = geometry.dish_uvw(telescope.itrf_m, np.array([T_S]), ra, dec)[0]
    measured = (around[1, :, 2] - around[0, :, 2]) / 2.0
    np.testing.assert_allclose(-EARTH_ROTATION_RAD_S * np.cos(dec) * now[:, 0], measured,
                               atol=1e-3 * np.abs(measured).max())


def test_bands_and_windows():
    emitters = Emitters.draw(seed=3, t0_s=T_S)
    gps = emitters.names.index("GPS L1 #1")
    low, high = emitters.band_hz[gps]
    freq = np.array([low - 2e6, low + 0.25e6, 1575.42e6, high + 2e6])
    overlap = emitters.overlap(freq, 1e6)[gps]
    np.testing.assert_allclose(overlap, [0.0, 0.75, 1.0, 0.0])
    assert not emitters.in_band(np.array([1.405e9, 1.42e9]), 5e6).any()  # the protected 1400-1427 MHz band
    seed_band = emitters.in_band(1.304e9 + 17.75e6 * np.arange(4), 17.75e6)  # the seed's first channel reaches 1295 MHz
    assert {emitters.names[e] for e in np.flatnonzero(seed_band)} == {"Galileo E6 #1", "Galileo E6 #2"}
    aircraft = [e for e, kind in enumerate(emitters.kinds) if kind == "aircraft"]
    within = [emitters.active(T_S + s)[aircraft] for s in (0.0, 100.0, 599.0)]
    assert all((w == within[0]).all() for w in within)  # one draw per 600 s window
    windows = np.array([emitters.active(T_S + 600.0 * k)[aircraft] for k in range(400)])
    assert windows.mean() == pytest.approx(0.4, abs=0.05)


def test_rfi_and_flags_do_not_depend_on_the_block(tmp_path: Path):
    settings = load_settings(environ={**GNSS_BAND, "TELESCOPE": "SKA-MID-AA1", "NUM_TIME_STAMPS": "6", "RFI": "on",
                                      "NOISE": "on", "GAINS": "on", "SYNTHETIC_SOURCES": "50", "OUT_DIR": str(tmp_path)})
    obs = plan(settings).observation.with_geometry()
    assert obs.rfi is not None
    whole = compute_block(obs, Block(0, 0, 6, 0, 60))
    parts = [compute_block(obs, Block(i, t, t + 3, c, c + 20)) for i, (t, c) in
             enumerate((t, c) for t in (0, 3) for c in (0, 20, 40))]
    for part in parts:
        b = part.block
        window = (slice(b.time_start, b.time_stop), slice(None), slice(b.chan_start, b.chan_stop))
        assert part.vis.tobytes() == whole.vis[window].tobytes()
        assert part.flag.tobytes() == whole.flag[window].tobytes()
    assert whole.flag.any() and not whole.flag.all()
    assert sum(p.rfi_score for p in parts).tolist() == whole.rfi_score.tolist()


def _image_rms(out: Path, sky: Path, **settings: str) -> tuple[float, float, str]:
    """The dirty image's rms (1.4826 MAD), the rms its unflagged visibilities' radiometer noise gives (SSNOISE), and
    the run's log."""
    out.mkdir()
    env = {"OUT_DIR": str(out), "SKY_MODEL": str(sky), "TELESCOPE": "SKA-MID-AA1", "NUM_TIME_STAMPS": "60",
           "OBS_LENGTH_HOURS": "0.5", "NOISE": "on", "IMAGING_NPIXEL": "256", "OBS_ID": "rfi", **GNSS_BAND, **settings}
    result = run_cli(["run", "--dirty"], env=env)
    assert result.returncode == 0, result.stderr
    with fits.open(out / "testing" / "dirty.fits") as hdul:
        data, expected = hdul[0].data.squeeze(), float(hdul[0].header["SSNOISE"])
    return float(1.4826 * np.median(np.abs(data - np.median(data)))), expected, result.stderr


def test_a_flagged_rfi_run_images_as_quietly_as_its_noise_allows(tmp_path: Path):
    """Flags remove data, so the flagged image's thermal rms is that of fewer visibilities (SSNOISE, from the
    unflagged ones): what RFI the flagger leaves must not raise the rms more than 10 % above it, as the clean run's
    noise-only image is against its own."""
    sky = write_csv_sky(tmp_path / "sky.csv", [(RA0, DEC0, 1e-6)])  # noise only: AA1's dirty sidelobes would dominate
    clean_rms, clean_expected, _ = _image_rms(tmp_path / "clean", sky)
    rfi_rms, rfi_expected, log = _image_rms(tmp_path / "rfi", sky, RFI="on")
    unflagged_rms, _, _ = _image_rms(tmp_path / "unflagged", sky, RFI="on", RFI_FLAG_SIGMA="1000")
    print(next(line for line in log.splitlines() if "completeness" in line))
    print(f"image rms (Jy/beam): clean {clean_rms:.3g} (noise gives {clean_expected:.3g}); RFI flagged {rfi_rms:.3g} "
          f"(noise of the unflagged data {rfi_expected:.3g}, {rfi_rms / clean_rms:.3f} x clean); RFI almost unflagged "
          f"{unflagged_rms:.3g}")
    assert clean_rms <= 1.1 * clean_expected
    assert rfi_rms <= 1.1 * rfi_expected
    assert unflagged_rms > 2 * clean_rms  # the RFI is there to be flagged


def test_rfi_outside_the_band_is_a_warning_with_counts_and_bad_thresholds_are_one_line(out_dir: Path):
    protected = {"START_FREQ_HZ": "1.401e9", "END_FREQ_HZ": "1.426e9", "FREQ_INC_HZ": "5e6"}  # 1400-1427 MHz, RR 5.340
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out_dir), "RFI": "on", "TELESCOPE": "SKA-MID-AA0.5",
                                           "NUM_TIME_STAMPS": "2", "OBS_ID": "rfi-warn", **protected})
    assert result.returncode == 0, result.stderr
    assert "RFI=on: none of the 29 modelled interferers" in result.stderr
    meta = json.loads((out_dir / "testing" / "measurements.ms.tar.meta").read_text())
    assert meta["name"] == "measurements.ms.tar"
    bad = run_cli(["run", "--vis"], env={"OUT_DIR": str(out_dir), "RFI": "on", "RFI_FLAG_SIGMA": "0"})
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "RFI_FLAG_SIGMA" in bad.stderr


def test_emitters_are_drawn_from_the_seed_only():
    a, b = Emitters.draw(seed=5, t0_s=T_S), Emitters.draw(seed=5, t0_s=T_S)
    assert a.flux_jy.tobytes() == b.flux_jy.tobytes() and a.names == b.names
    assert not np.array_equal(a.flux_jy, Emitters.draw(seed=6, t0_s=T_S).flux_jy)
    assert replace(a, seed=5).active(T_S + 1234.0).tolist() == b.active(T_S + 1234.0).tolist()


def test_the_true_mask_marks_each_emitters_channels_and_times(tmp_path: Path):
    """MASK bit e is set exactly in the channels whose edges overlap emitter e's band (from the band table, not
    from Emitters.overlap), at the times it transmits: always for satellites, in 600 s windows for aircraft."""
    from srcnet_sim.products.rfi_truth import rfi_mask

    settings = load_settings(environ={"START_FREQ_HZ": "1.02e9", "END_FREQ_HZ": "1.61e9", "FREQ_INC_HZ": "1e6",
                                      "TELESCOPE": "SKA-MID-AA0.5", "NUM_TIME_STAMPS": "48", "OBS_LENGTH_HOURS": "4",
                                      "RFI": "on", "OUT_DIR": str(tmp_path)})
    obs = plan(settings).observation
    mask = rfi_mask(obs)
    emitters = obs.rfi.emitters
    low_edge, high_edge = obs.freq_hz - 0.5e6, obs.freq_hz + 0.5e6
    for e, (name, kind) in enumerate(zip(emitters.names, emitters.kinds, strict=True)):
        band_low, band_high = emitters.band_hz[e]
        channels = (high_edge > band_low) & (low_edge < band_high)
        bit = (mask >> e) & 1
        assert not bit[:, ~channels].any(), name
        times_on = bit[:, channels].all(axis=1)
        assert (times_on == bit[:, channels].any(axis=1)).all(), name  # a time step is on in all its channels or none
        if kind == "satellite":
            assert times_on.all(), name
    aircraft = [e for e, kind in enumerate(emitters.kinds) if kind == "aircraft"]
    on = np.array([[(mask[t] >> e) & 1 for e in aircraft] for t in range(48)]).max(axis=2)
    assert 0 < on.mean() < 1  # aircraft come and go
    window = ((obs.times_s - obs.times_s[0]) // 600).astype(int)
    for w in np.unique(window):  # constant within a window
        assert (on[window == w] == on[window == w][0]).all()
