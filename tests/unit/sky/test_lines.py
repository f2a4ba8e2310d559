"""Spectral lines: channel-integrated profiles against scipy, the visibilities against the exact DFT of them, pruning of
the lines outside a channel group, block independence, catalogues (SDC2, Jy km/s, redshift), the truth's line
columns, SYNTHETIC_HI against the literature it cites, and WSClean's per-channel images."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from casacore.tables import table
from scipy import integrate, stats

from conftest import run_cli, sin_pixel_position, unpack_ms, write_csv_sky
from srcnet_sim.config import load_settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.run.plan import plan
from srcnet_sim.simulate.observation import LINE_CHANNEL_GROUP, simulate
from srcnet_sim.constants import HI_REST_FREQ_HZ
from srcnet_sim.sky.catalogues import C_KM_S, read_catalogue
from srcnet_sim.sky.lines import W20_PER_SIGMA, channel_line_flux, disc_rotation_hz
from srcnet_sim.sky.resolve import load_sky_model

RA0, DEC0 = 150.12, 2.21
C = 299_792_458.0
# 40 channels of 26 kHz (5.5 km/s at 1.4 GHz): two line groups of LINE_CHANNEL_GROUP channels
LINE_BAND = {"START_FREQ_HZ": "1.4e9", "END_FREQ_HZ": str(1.4e9 + 40.5 * 26e3), "FREQ_INC_HZ": "26e3"}
LINE_HEADER = "ra_deg,dec_deg,i_jy,line_flux_jy_hz,line_freq_hz,w20_kms"


def gaussian_channel_flux(flux, centre, w20, freq, width):
    """(n_chan,) mean flux density (Jy) of a Gaussian line over each channel, from scipy's normal CDF."""
    line = stats.norm(centre, w20 / W20_PER_SIGMA)
    return flux * (line.cdf(freq + width / 2) - line.cdf(freq - width / 2)) / width


def test_a_line_narrower_than_a_channel_keeps_its_integrated_flux():
    width = 26e3
    freq = 1.4e9 + np.arange(20) * width
    rng = np.random.default_rng(23)
    centre = freq[6] + rng.uniform(0, 8, 50) * width  # well inside: 6 sigma of the widest ends in the band
    w20 = rng.uniform(0.05, 3.0, 50) * width  # from a fifth of a channel's width to three
    flux = rng.uniform(1.0, 100.0, 50)  # Jy Hz
    got = channel_line_flux(flux, centre, w20, np.zeros(50), freq, width)
    np.testing.assert_allclose(got.sum(axis=0) * width, flux, rtol=1e-6)
    want = np.stack([gaussian_channel_flux(f, c, w, freq, width) for f, c, w in zip(flux, centre, w20)], axis=1)
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


def test_the_disc_profile_has_its_w20_two_horns_and_the_rings_convolution():
    """A rotating disc: the profile sampled finely has the W20 asked for (to 1e-3), two horns near +-V and a dip
    between; its channel fluxes equal the ring's profile, 1 / (pi sqrt(V^2 - x^2)), convolved with the gas's Gaussian,
    integrated by scipy's quad over the ring (to 1e-6)."""
    sigma, w20 = 47e3, 1.2e6  # 10 km/s and 255 km/s at 1.4 GHz
    v = float(disc_rotation_hz(np.array([w20]), np.array([sigma]))[0])
    width = 500.0
    freq = np.arange(-1e6, 1e6, width)
    profile = channel_line_flux(np.array([1.0]), np.array([0.0]), np.array([w20]), np.array([sigma]), freq, width)[:, 0]
    assert profile.sum() * width == pytest.approx(1.0, rel=1e-9)
    above = freq[profile >= 0.2 * profile.max()]
    assert abs(above.max() - above.min() + width - w20) <= 2 * width  # 1e-3 of W20
    horns = freq[np.argsort(profile)[-2:]]
    assert sorted(np.abs(horns) / v) == pytest.approx([0.95, 0.95], abs=0.05) and horns[0] * horns[1] < 0
    assert profile[np.argmin(np.abs(freq))] < 0.8 * profile.max()

    def ring_convolved_cdf(x):  # P(nu < x) of V sin(theta) + N(0, sigma), theta uniform: a ring seen edge-on
        return integrate.quad(lambda t: stats.norm.cdf((x - v * np.sin(t)) / sigma), 0, 2 * np.pi, limit=200)[0] / (2 * np.pi)

    coarse = np.linspace(-8e5, 8e5, 17)
    got = channel_line_flux(np.array([1.0]), np.array([0.0]), np.array([w20]), np.array([sigma]), coarse, 1e5)[:, 0]
    want = np.array([ring_convolved_cdf(f + 5e4) - ring_convolved_cdf(f - 5e4) for f in coarse]) / 1e5
    np.testing.assert_allclose(got, want, atol=1e-6 * want.max())


def _line_plan(tmp_path: Path, rows: list[tuple[float, ...]], **settings: str):
    sky = write_csv_sky(tmp_path / "sky.csv", rows, header=LINE_HEADER)
    env = {"TELESCOPE": "SKA-MID-AA0.5", "NUM_TIME_STAMPS": "3", "SMEARING": "off", "PRECISION": "double", "BEAM": "none",
           **LINE_BAND, "SKY_MODEL": str(sky), **settings}
    return plan(load_settings(environ=env))


def test_the_visibilities_are_the_exact_dft_of_the_channel_integrated_line(tmp_path: Path):
    """A point source with a Gaussian line across the group boundary plus a flat-spectrum continuum source: every
    channel's visibilities equal S exp(+2 pi i f tau) with S from scipy's CDF over the channel (to 1e-8 of the
    largest: the profile is cut at 6 sigma, 2e-9 of its flux), in both channel groups."""
    f0, w20_kms = 1.4e9 + 31.3 * 26e3, 15.0  # 31.3 channels up: the line straddles channels 31 and 32
    rows = [(RA0 + 0.03, DEC0 - 0.02, 0.0, 5e4, f0, w20_kms), (RA0 - 0.05, DEC0 + 0.01, 0.2, 0.0, 0.0, 0.0)]
    obs = _line_plan(tmp_path, rows).observation.with_geometry()
    freq = obs.freq_hz
    line = gaussian_channel_flux(5e4, f0, w20_kms * f0 / C_KM_S, freq, 26e3)
    assert line[31] > 0 and line[32] > 0 and line.sum() * 26e3 == pytest.approx(5e4, rel=1e-6)
    sky, lmn = obs._sky_terms[0], obs._sky_terms[1]
    stokes = np.where(sky.line_flux_jy_hz[None, :] != 0, line[:, None], 0.2)  # (n_chan, n_src) Jy, in the terms' order
    assert sorted(stokes[0]) == sorted([line[0], 0.2])
    for step in simulate(obs):
        tau = step.uvw_m @ lmn.T / C  # (n_bl, n_src) s
        want = np.sum(stokes[None] * np.exp(2j * np.pi * freq[None, :, None] * tau[:, None, :]), axis=-1)
        assert np.abs(step.vis[..., 0] - want).max() <= 1e-8 * np.abs(want).max()
        np.testing.assert_array_equal(step.vis[..., 0], step.vis[..., 3])


def test_lines_outside_a_channel_group_are_not_predicted_and_change_no_byte(tmp_path: Path, caplog):
    """Fifty lines beyond the band and in the second group only: the first group's terms hold neither, its
    visibilities are bit-identical to the sky without them, and the fifty beyond the band are counted in a warning."""
    base = [(RA0 + 0.03, DEC0 - 0.02, 0.1, 3e4, 1.4e9 + 5 * 26e3, 20.0), (RA0, DEC0, 0.2, 0.0, 0.0, 0.0)]
    beyond = [(RA0 + 0.001 * k, DEC0 + 0.004, 0.0, 1e4, 1.45e9, 20.0) for k in range(50)]
    second = [(RA0 - 0.001 * k, DEC0 - 0.004, 0.0, 1e4, 1.4e9 + 39 * 26e3, 20.0) for k in range(10)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone = _line_plan(tmp_path / "a", base).observation.with_geometry()
    with caplog.at_level(logging.WARNING):
        crowded = _line_plan(tmp_path / "b", base + beyond + second).observation.with_geometry()
    assert "50 of 61 lines" in caplog.text and "wholly outside the band" in caplog.text
    first = slice(0, LINE_CHANNEL_GROUP)
    assert len(crowded.source_terms(first).lmn) == 2
    assert len(crowded.source_terms(slice(LINE_CHANNEL_GROUP, 40)).lmn) == 12  # the two with continuum and the ten
    for a, b in zip(simulate(alone, channels=first), simulate(crowded, channels=first), strict=True):
        assert a.vis.tobytes() == b.vis.tobytes()


def test_line_visibilities_do_not_depend_on_the_blocks():
    """SYNTHETIC_HI over 40 channels with noise and gains: one block of everything equals the same samples cut into
    blocks across the line groups' boundary (channel 32), bit for bit."""
    from srcnet_sim.config import Settings
    from srcnet_sim.run.blocks import Block, compute_block

    settings = Settings(**{k.lower(): v for k, v in LINE_BAND.items()}, telescope="SKA-MID-AA0.5", sky_model="SYNTHETIC_HI",
                        synthetic_sources=60, num_time_stamps=4, noise="on", gains="on")
    obs = plan(settings).observation.with_geometry()
    n_t, n_c = len(obs.times_s), len(obs.freq_hz)
    whole = compute_block(obs, Block(0, 0, n_t, 0, n_c), threads=2)
    for t0, t1 in ((0, 1), (1, n_t)):
        for c0, c1 in ((0, 7), (7, 33), (33, n_c)):
            part = compute_block(obs, Block(0, t0, t1, c0, c1), threads=1)
            assert part.vis.tobytes() == np.ascontiguousarray(whole.vis[t0:t1, :, c0:c1]).tobytes()


def test_an_sdc2_truth_catalogue_is_read_with_its_units(tmp_path: Path):
    """SKA Data Challenge 2's HI truth layout (whitespace, a header; hi_size arcsec, line_flux_integral Jy Hz,
    central_freq Hz, pa and i deg, w20 km/s): 'i' is the inclination, there is no continuum."""
    path = tmp_path / "sdc2_truth.txt"
    path.write_text("id ra dec hi_size line_flux_integral central_freq pa i w20\n"
                    "1 150.1 2.2 12.0 45.0 1.38e9 30.0 60.0 210.0\n"
                    "2 150.2 2.3 6.0 8.5 1.35e9 120.0 0.0 80.0\n")
    sky = read_catalogue(path)
    np.testing.assert_array_equal(sky.stokes_i_jy, 0.0)
    np.testing.assert_allclose(sky.line_flux_jy_hz, [45.0, 8.5])
    np.testing.assert_allclose(sky.line_freq_hz, [1.38e9, 1.35e9])
    np.testing.assert_allclose(sky.line_w20_hz, [210.0 * 1.38e9 / C_KM_S, 80.0 * 1.35e9 / C_KM_S], rtol=1e-12)
    np.testing.assert_allclose(sky.line_sigma_hz, [10.0 * 1.38e9 / C_KM_S, 10.0 * 1.35e9 / C_KM_S], rtol=1e-12)
    np.testing.assert_allclose(np.degrees(sky.major_fwhm_rad) * 3600, [12.0, 6.0])
    np.testing.assert_allclose(sky.minor_fwhm_rad / sky.major_fwhm_rad, [np.sqrt(0.25 * 0.96 + 0.04), 1.0])
    np.testing.assert_allclose(np.degrees(sky.position_angle_rad), [30.0, 120.0])


def test_a_csv_line_in_jy_km_s_at_a_redshift(tmp_path: Path):
    path = write_csv_sky(tmp_path / "sky.csv", [(150.0, 2.0, 0.001, 1.5, 0.05, 120.0)],
                         header="ra_deg,dec_deg,i_jy,line_flux_jy_kms,redshift,w50_kms")
    sky = read_catalogue(path)
    nu = HI_REST_FREQ_HZ / 1.05
    assert sky.line_freq_hz[0] == pytest.approx(nu, rel=1e-15)
    assert sky.line_flux_jy_hz[0] == pytest.approx(1.5 * nu / C_KM_S, rel=1e-12)
    assert sky.line_w20_hz[0] == pytest.approx(120.0 * np.sqrt(np.log(5) / np.log(2)) * nu / C_KM_S, rel=1e-4)
    assert sky.line_sigma_hz[0] == 0.0 and sky.stokes_i_jy[0] == 0.001


@pytest.mark.parametrize(("header", "row", "setting", "phrase"), [
    ("ra_deg,dec_deg,line_flux_jy_hz,w20_kms", (150.0, 2.0, 10.0, 100.0), "SKY_MODEL", "needs line_freq_hz"),
    ("ra_deg,dec_deg,line_flux_jy_hz,line_freq_hz,w20_kms", (150.12, 2.21, 10.0, 1.4e9, -5.0), "SKY_MODEL", "W20 is > 0"),
    ("ra_deg,dec_deg,line_flux_jy_hz,line_freq_hz", (150.0, 2.0, 10.0, 1.4e9), "SKY_MODEL", "needs its width"),
])
def test_a_bad_line_is_one_line_naming_the_setting(tmp_path: Path, header, row, setting, phrase):
    path = write_csv_sky(tmp_path / "sky.csv", [row], header=header)
    with pytest.raises(UserInputError) as error:
        load_sky_model(str(path), None, np.radians(150.12), np.radians(2.21), np.radians(1), 1, 1, np.array([1.4e9]))
    assert error.value.setting == setting and phrase in str(error.value) and "\n" not in str(error.value)


def test_a_negative_width_stops_the_run_before_any_work(tmp_path: Path):
    (tmp_path / "out").mkdir()
    sky = write_csv_sky(tmp_path / "sky.csv", [(RA0, DEC0, 0.0, 10.0, 1.4e9, -5.0)], header=LINE_HEADER)
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(tmp_path / "out"), "SKY_MODEL": str(sky), **LINE_BAND})
    assert result.returncode == 2
    assert "SKY_MODEL" in result.stderr and "W20" in result.stderr
    assert not any((tmp_path / "out").rglob("*.ms.tar"))


def test_synthetic_hi_follows_the_mass_function_volume_and_hi_flux_formula():
    """SYNTHETIC_HI: seeded; lines within the band; masses follow the Schechter HI mass function (KS test against its
    CDF integrated by scipy), redshifts the comoving volume (astropy's dV/dz), and the fluxes the textbook
    M_HI = 2.356e5 / (1 + z) D_L^2 S_V (S_V in Jy km/s; Meyer 2017's Jy Hz form used by the model is another)."""
    from astropy.cosmology import Planck18

    freq = 1.33e9 + np.arange(200) * 250e3  # z = 0.027-0.068
    sky = load_sky_model("SYNTHETIC_HI", None, 2.6, 0.04, np.radians(1.0), 3000, 5, freq)
    again = load_sky_model("SYNTHETIC_HI", None, 2.6, 0.04, np.radians(1.0), 3000, 5, freq)
    other = load_sky_model("SYNTHETIC_HI", None, 2.6, 0.04, np.radians(1.0), 3000, 6, freq)
    assert sky.line_flux_jy_hz.tobytes() == again.line_flux_jy_hz.tobytes()
    assert sky.line_flux_jy_hz.tobytes() != other.line_flux_jy_hz.tobytes()
    assert len(sky) == 3000 and np.all(sky.stokes_i_jy == 0)
    assert freq.min() <= sky.line_freq_hz.min() and sky.line_freq_hz.max() <= freq.max()
    z = HI_REST_FREQ_HZ / sky.line_freq_hz - 1
    d_l = Planck18.luminosity_distance(z).value
    flux_kms = sky.line_flux_jy_hz / (sky.line_freq_hz / C_KM_S)
    log_mass = np.log10(2.356e5 / (1 + z) * d_l**2 * flux_kms)
    assert log_mass.min() > 8.0 - 2e-3 and log_mass.max() < 11.0 + 2e-3

    def schechter(x):
        m = 10.0 ** (x - 9.94)
        return m ** (1 - 1.25) * np.exp(-m)

    total = integrate.quad(schechter, 8.0, 11.0)[0]
    assert stats.kstest(np.clip(log_mass, 8, 11), lambda x: np.array([integrate.quad(schechter, 8.0, v)[0] for v in np.atleast_1d(x)]) / total).pvalue > 1e-3
    z_lo, z_hi = HI_REST_FREQ_HZ / freq.max() - 1, HI_REST_FREQ_HZ / freq.min() - 1
    volume = lambda x: (Planck18.comoving_volume(x).value - Planck18.comoving_volume(z_lo).value) / (  # noqa: E731
        Planck18.comoving_volume(z_hi).value - Planck18.comoving_volume(z_lo).value)
    assert stats.kstest(z, volume).pvalue > 1e-3
    w20_kms = sky.line_w20_hz / (sky.line_freq_hz / C_KM_S)
    assert 20 < np.median(w20_kms) < 400 and np.all(sky.line_sigma_hz > 0)


def test_wsclean_channel_images_read_the_truths_line_flux(tmp_path: Path):
    """A 1e5 Jy Hz Gaussian line (W20 60 km/s, about 11 channels) off axis on a pixel centre, BEAM=none: WSClean's
    per-channel dirty images (-channels-out 40) read, at the source, the truth's S_APP of each channel to 1e-3 of
    the peak, the truth's S_APP equals scipy's channel integral, and the channels beyond the line read 0."""
    assert shutil.which("wsclean"), "WSClean must be installed (Debian package wsclean): the README's test command does it"
    cell = np.radians(8.0 / 3600)
    f0 = 1.4e9 + 19.6 * 26e3
    write_csv_sky(tmp_path / "sky.csv", [(*sin_pixel_position(40, -25, cell), 0.0, 1e5, f0, 60.0)], header=LINE_HEADER)
    env = {"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA1", "BEAM": "none", "SKY_MODEL": str(tmp_path / "sky.csv"),
           "NUM_TIME_STAMPS": "12", "SMEARING": "off", **LINE_BAND}
    result = run_cli(["run", "--vis", "--truth"], env=env)
    assert result.returncode == 0, result.stderr
    truth = fits.getdata(tmp_path / "testing" / "truth.fits", 1)
    freq = 1.4e9 + np.arange(40) * 26e3
    expected = truth["S_APP"][0]
    np.testing.assert_allclose(expected, gaussian_channel_flux(1e5, f0, 60.0 * f0 / C_KM_S, freq, 26e3),
                               atol=1e-8 * expected.max())  # the profile cut at 6 sigma: 2e-9 of its flux
    assert truth["LINE_FLUX_KMS"][0] == pytest.approx(1e5 / (f0 / C_KM_S), rel=1e-12)
    assert truth["LINE_S_APP"][0] == pytest.approx(1e5, rel=1e-6)
    ms = unpack_ms(tmp_path / "testing" / "measurements.ms.tar", tmp_path / "ms")
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        np.testing.assert_allclose(spw.getcol("CHAN_FREQ")[0], freq)
    subprocess.run(["wsclean", "-quiet", "-use-wgridder", "-size", "256", "256", "-scale", "8asec", "-weight", "natural",
                    "-pol", "I", "-channels-out", "40", "-name", str(tmp_path / "ws"), str(ms)],
                   check=True, capture_output=True, timeout=600)
    measured = np.array([fits.getdata(tmp_path / f"ws-{k:04d}-dirty.fits")[0, 0][128 - 25, 128 + 40] for k in range(40)])
    print(f"WSClean per-channel peak {measured.max():.4f} Jy/beam, truth {expected.max():.4f} Jy")
    assert expected.max() > 0.3 and np.count_nonzero(expected > 0.01 * expected.max()) >= 8
    np.testing.assert_allclose(measured, expected, atol=1e-3 * expected.max())
    assert np.count_nonzero(expected == 0) >= 2 and np.all(measured[expected == 0] == 0)
