"""Predictor: analytic answers, a direct per-baseline DFT, and the independent simulator matvis."""

from __future__ import annotations

import numpy as np
import pytest

from srcnet_sim.instrument.beams import gaussian_voltage_beam, power_beam_fwhm_rad
from srcnet_sim.simulate.predict import SourceTerms, baseline_pairs, predict_time_step

C = 299_792_458.0
FREQ = np.array([1.30e9, 1.32e9, 1.34e9])


def terms_for(lmn, stokes_i, n_chan=3, q=None, u=None, v=None, gaussian=None, beams=None):
    n = len(lmn)
    stokes = np.zeros((n_chan, 4, n))
    stokes[:, 0] = stokes_i
    for x, values in ((1, q), (2, u), (3, v)):
        if values is not None:
            stokes[:, x] = values
    g = np.zeros((n, 4)) if gaussian is None else gaussian
    n_point = int(np.count_nonzero(g[:, 0] == 0))
    return SourceTerms(lmn=np.asarray(lmn, float), stokes=stokes, beams=np.ones((1, n_chan, n)) if beams is None else beams,
                       gaussian=g, n_point=n_point)


def random_layout(rng, n_dish=7, scale=2000.0):
    uvw = rng.normal(0, scale, (n_dish, 3))
    uvw[:, 2] *= 0.2
    return uvw


def lmn_of(l, m):
    l, m = np.asarray(l, float), np.asarray(m, float)
    return np.stack([l, m, np.sqrt(1 - l * l - m * m) - 1], -1)


def direct_dft(uvw, lmn, stokes, freq, ant1, ant2, beams=None, dish_type=None, width=0.0, gaussian=None):
    """Per-baseline, per-source evaluation of the measurement equation, written out plainly."""
    out = np.zeros((len(ant1), len(freq), 4), complex)
    for b, (p, q) in enumerate(zip(ant1, ant2)):
        bl = uvw[p] - uvw[q]
        for k, f in enumerate(freq):
            delay = bl @ lmn.T / C
            w = np.sinc(width * delay)
            if beams is not None:
                w = w * beams[dish_type[p], k] * beams[dish_type[q], k]
            if gaussian is not None:
                u_l, v_l = bl[0] * f / C, bl[1] * f / C
                a = u_l * gaussian[:, 2] + v_l * gaussian[:, 3]
                c = u_l * gaussian[:, 3] - v_l * gaussian[:, 2]
                w = w * np.exp(-np.pi**2 / (4 * np.log(2)) * (gaussian[:, 0] * a**2 + gaussian[:, 1] * c**2))
            i, qq, uu, vv = (np.sum(stokes[k, x] * w * np.exp(2j * np.pi * f * delay)) for x in range(4))
            out[b, k] = [i + qq, uu + 1j * vv, uu - 1j * vv, i - qq]
    return out


def test_source_at_phase_centre_gives_its_flux_on_every_baseline():
    rng = np.random.default_rng(0)
    uvw = random_layout(rng)
    a1, a2 = baseline_pairs(7, False)
    vis = predict_time_step(uvw, terms_for(lmn_of([0.0], [0.0]), [2.5]), np.zeros(7, int), FREQ, a1, a2, dtype=np.complex128)
    np.testing.assert_allclose(vis[..., 0], 2.5, rtol=1e-12)
    np.testing.assert_allclose(vis[..., 3], 2.5, rtol=1e-12)
    np.testing.assert_allclose(vis[..., 1:3], 0.0, atol=1e-12)


def test_phase_sign_follows_the_casa_convention():
    """V = S exp(+2 pi i (u l + v m + w (n - 1)) / lambda) with u = u(ant1) - u(ant2)."""
    uvw = np.array([[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]])
    l = 1e-3
    a1, a2 = baseline_pairs(2, False)
    vis = predict_time_step(uvw, terms_for(lmn_of([l], [0.0]), [1.0]), np.zeros(2, int), FREQ, a1, a2, dtype=np.complex128)
    expected = np.exp(2j * np.pi * (-1000.0) * l * FREQ / C)  # u = 0 - 1000 m
    np.testing.assert_allclose(vis[0, :, 0], expected, rtol=1e-10)


def test_stokes_to_linear_correlations():
    uvw = random_layout(np.random.default_rng(1), 4)
    a1, a2 = baseline_pairs(4, False)
    t = terms_for(lmn_of([0.0], [0.0]), [1.0], q=[0.2], u=[0.1], v=[0.05])
    vis = predict_time_step(uvw, t, np.zeros(4, int), FREQ, a1, a2, dtype=np.complex128)
    np.testing.assert_allclose(vis[0, 0], [1.2, 0.1 + 0.05j, 0.1 - 0.05j, 0.8], rtol=1e-12)


def test_bandwidth_smearing_is_the_sinc_of_the_channel_width():
    uvw = np.array([[0.0, 0.0, 0.0], [20000.0, 0.0, 0.0]])
    a1, a2 = baseline_pairs(2, False)
    l, width = 5e-3, 17.75e6
    vis = predict_time_step(uvw, terms_for(lmn_of([l], [0.0]), [1.0]), np.zeros(2, int), FREQ, a1, a2,
                            channel_width_hz=width, dtype=np.complex128)
    delay = -20000.0 * l / C
    np.testing.assert_allclose(np.abs(vis[0, :, 0]), abs(np.sinc(width * delay)), rtol=1e-9)


@pytest.mark.parametrize("dtype, rtol", [(np.complex128, 1e-9), (np.complex64, 1e-6)])
def test_time_smearing_is_the_sinc_of_the_fringe_rate(dtype, rtol):
    """Averaging over the interval a fringe rotating at f * d(tau)/dt: |V| = sinc(f dt d(tau)/dt), from no
    rotation (the series below 1e-5 turns) to several turns in the interval, in both precisions."""
    # d(tau)/dt per dish and source, s/s; sinc arguments pi f dt (rate_p - rate_q) from 3e-6 to 19 rad, with 0.66 and
    # 0.92 on either side of the float32 kernel's switch from its series to the dishes' sines (0.8)
    rate = np.array([[0.0], [1e-18], [2e-15], [2.5e-13], [3.5e-13], [6e-13], [2.5e-12], [7e-12]])
    uvw = np.array([[0.0, 0.0, 0.0], [20000.0, 0.0, 0.0], [0.0, 9000.0, 0.0], [-4000.0, 3000.0, 0.0],
                    [15000.0, -8000.0, 0.0], [-7000.0, -2000.0, 0.0], [1000.0, 1000.0, 0.0], [-500.0, 8000.0, 0.0]])
    a1, a2 = baseline_pairs(len(uvw), False)
    interval = 600.0
    vis = predict_time_step(uvw, terms_for(lmn_of([1e-3], [0.0]), [1.0]), np.zeros(len(uvw), int), FREQ, a1, a2,
                            dish_delay_rate=rate, interval_s=interval, dtype=dtype)
    expected = np.abs(np.sinc(FREQ[None, :] * interval * (rate[a1, 0] - rate[a2, 0])[:, None]))
    np.testing.assert_allclose(np.abs(vis[:, :, 0]), expected, rtol=rtol, atol=rtol)
    assert expected.min() < 0.1  # the effect is large enough to be seen


def test_gaussian_source_envelope():
    """A Gaussian of FWHM theta at the phase centre: V = S exp(-pi^2 theta^2 u^2 / (4 ln 2))."""
    uvw = np.array([[0.0, 0.0, 0.0], [3000.0, 0.0, 0.0]])
    a1, a2 = baseline_pairs(2, False)
    theta = 2e-5
    g = np.array([[theta**2, theta**2, 0.0, 1.0]])
    vis = predict_time_step(uvw, terms_for(lmn_of([0.0], [0.0]), [1.0], gaussian=g), np.zeros(2, int), FREQ, a1, a2,
                            dtype=np.complex128)
    u_l = 3000.0 * FREQ / C
    np.testing.assert_allclose(vis[0, :, 0].real, np.exp(-np.pi**2 * theta**2 * u_l**2 / (4 * np.log(2))), rtol=1e-10)


def test_power_beam_has_the_stated_fwhm():
    fwhm = power_beam_fwhm_rad(1.4e9, 15.0)
    e = gaussian_voltage_beam(np.array([fwhm / 2]), np.array([1.4e9]), np.array([15.0]))
    assert e[0, 0, 0] ** 2 == pytest.approx(0.5)


@pytest.mark.parametrize("dtype, rtol", [(np.complex128, 1e-10), (np.complex64, 2e-5)])
@pytest.mark.parametrize("smearing", [0.0, 17.75e6])
def test_matches_direct_dft_with_beams_polarisation_and_gaussians(dtype, rtol, smearing):
    rng = np.random.default_rng(7)
    n_dish, n_src = 9, 40
    uvw = random_layout(rng, n_dish)
    lmn = lmn_of(rng.normal(0, 0.01, n_src), rng.normal(0, 0.01, n_src))
    beams = rng.uniform(0.3, 1.0, (2, 3, n_src))
    dish_type = rng.integers(0, 2, n_dish)
    g = np.zeros((n_src, 4))
    pa = rng.uniform(0, np.pi, 10)
    g[30:] = np.stack([np.full(10, 3e-5**2), np.full(10, 1e-5**2), np.sin(pa), np.cos(pa)], -1)
    t = terms_for(lmn, rng.random(n_src), q=rng.normal(0, 0.1, n_src), u=0.05, v=-0.02, gaussian=g, beams=beams)
    a1, a2 = baseline_pairs(n_dish, True)
    if smearing == 0.0:
        # Gaussians need the per-baseline path; test the BLAS path with points only as well.
        t_points = terms_for(lmn, t.stokes[:, 0], q=t.stokes[:, 1], u=0.05, v=-0.02, beams=beams)
        got = predict_time_step(uvw, t_points, dish_type, FREQ, a1, a2, dtype=dtype)
        ref = direct_dft(uvw, lmn, t_points.stokes, FREQ, a1, a2, beams, dish_type)
        np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * np.abs(ref).max())
    got = predict_time_step(uvw, t, dish_type, FREQ, a1, a2, channel_width_hz=smearing, dtype=dtype)
    ref = direct_dft(uvw, lmn, t.stokes, FREQ, a1, a2, beams, dish_type, smearing, g)
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * np.abs(ref).max())


@pytest.mark.parametrize("one_tile_per_group", [False, True])
@pytest.mark.parametrize("dtype, rtol", [(np.complex128, 1e-10), (np.complex64, 2e-5)])
def test_tiles_of_sources_and_channels_add_up_to_the_direct_dft(dtype, rtol, one_tile_per_group, monkeypatch):
    """More sources and channels than one tile of the smearing kernel (partial last tiles, a tile of points and
    Gaussians mixed), rows of baselines of odd and even length (no autocorrelations); the tiles packed and summed
    in one group, or in groups of one tile each."""
    from srcnet_sim.simulate import baseline_kernel
    from srcnet_sim.simulate.baseline_kernel import CHANNEL_TILE, SOURCE_TILE

    if one_tile_per_group:
        monkeypatch.setattr(baseline_kernel, "PACKED_TERMS_BYTES", 1)

    rng = np.random.default_rng(3)
    n_dish, n_src, n_chan = 8, 2 * SOURCE_TILE + 88, CHANNEL_TILE + 2
    freq = 1.3e9 + 17.75e6 * np.arange(n_chan)
    uvw = random_layout(rng, n_dish, scale=5000.0)
    lmn = lmn_of(rng.normal(0, 0.01, n_src), rng.normal(0, 0.01, n_src))
    beams = rng.uniform(0.3, 1.0, (2, n_chan, n_src))
    dish_type = rng.integers(0, 2, n_dish)
    g = np.zeros((n_src, 4))
    first_gaussian = 2 * SOURCE_TILE - 12
    pa = rng.uniform(0, np.pi, n_src - first_gaussian)
    g[first_gaussian:] = np.stack([np.full(len(pa), 2e-5**2), np.full(len(pa), 1e-5**2), np.sin(pa), np.cos(pa)], -1)
    t = terms_for(lmn, rng.random(n_src), n_chan=n_chan, q=rng.normal(0, 0.1, n_src), v=0.01, gaussian=g, beams=beams)
    a1, a2 = baseline_pairs(n_dish, False)
    got = predict_time_step(uvw, t, dish_type, freq, a1, a2, channel_width_hz=17.75e6, dtype=dtype)
    ref = direct_dft(uvw, lmn, t.stokes, freq, a1, a2, beams, dish_type, 17.75e6, g)
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * np.abs(ref).max())


def test_agrees_with_matvis():
    """matvis (an independent simulator) on the same dish UVW and source directions, beam off.

    matvis is given our per-dish UVW as antenna positions and (l, m, n) as topocentric
    directions, so both evaluate the same geometry. Three convention differences, each exact:
    matvis phases with exp(-2 pi i b.s / lambda) (the conjugate of CASA's sign), puts half of
    Stokes I on each feed (XX = I/2), and uses w n rather than w (n - 1) (no fringe stopping).
    """
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from matvis import cpu
    from matvis.core.coords import CoordinateRotation
    from pyuvdata.analytic_beam import UniformBeam

    class GivenDirections(CoordinateRotation):
        def __init__(self, lmn, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.lmn = lmn

        def rotate(self, t):
            self.all_coords_topo[:] = self.lmn.T

    rng = np.random.default_rng(11)
    n_dish, n_src = 12, 60
    uvw = random_layout(rng, n_dish, 5000.0)
    l, m = rng.normal(0, 0.02, n_src), rng.normal(0, 0.02, n_src)
    direction = np.stack([l, m, np.sqrt(1 - l**2 - m**2)], -1)
    flux = rng.uniform(0.1, 2.0, n_src)
    a1, a2 = baseline_pairs(n_dish, False)
    ours = predict_time_step(uvw, terms_for(lmn_of(l, m), flux), np.zeros(n_dish, int), FREQ, a1, a2, dtype=np.complex128)
    for k, f in enumerate(FREQ):
        theirs = cpu.simulate(
            antpos=uvw, freq=f, times=Time([2459000.0], format="jd"), skycoords=SkyCoord(np.zeros(n_src), np.zeros(n_src), unit="rad"),
            telescope_loc=EarthLocation.from_geodetic(21.44, -30.71), I_sky=flux, beam_list=[UniformBeam()],
            antpairs=np.stack([a1, a2], -1), precision=2, coord_method="GivenDirections", coord_method_params={"lmn": direction},
        )[0]
        fringe_stop = np.exp(-2j * np.pi * f * (uvw[a1, 2] - uvw[a2, 2]) / C)
        np.testing.assert_allclose(ours[:, k, 0], 2.0 * np.conj(theirs) * fringe_stop, rtol=1e-5, atol=1e-5 * np.abs(ours).max())


def direct_dft_jones(uvw, lmn, stokes, freq, ant1, ant2, hv, dish_type, width=0.0, gaussian=None):
    """The measurement equation V = J_p B J_q^H with J = diag(E_H, E_V), per baseline and source, written out
    plainly: hv (n_type, 2, n_chan, n_src) the H and V voltage patterns."""
    out = np.zeros((len(ant1), len(freq), 4), complex)
    for b, (p, q) in enumerate(zip(ant1, ant2, strict=True)):
        bl = uvw[p] - uvw[q]
        for k, f in enumerate(freq):
            delay = bl @ lmn.T / C
            w = np.sinc(width * delay)
            if gaussian is not None:
                u_l, v_l = bl[0] * f / C, bl[1] * f / C
                a = u_l * gaussian[:, 2] + v_l * gaussian[:, 3]
                c = u_l * gaussian[:, 3] - v_l * gaussian[:, 2]
                w = w * np.exp(-np.pi**2 / (4 * np.log(2)) * (gaussian[:, 0] * a**2 + gaussian[:, 1] * c**2))
            fringe = w * np.exp(2j * np.pi * f * delay)
            i, qq, uu, vv = stokes[k]
            e_p, e_q = hv[dish_type[p], :, k], hv[dish_type[q], :, k]
            out[b, k] = [np.sum((i + qq) * e_p[0] * e_q[0] * fringe), np.sum((uu + 1j * vv) * e_p[0] * e_q[1] * fringe),
                         np.sum((uu - 1j * vv) * e_p[1] * e_q[0] * fringe), np.sum((i - qq) * e_p[1] * e_q[1] * fringe)]
    return out


@pytest.mark.parametrize("dtype, rtol", [(np.complex128, 1e-10), (np.complex64, 2e-5)])
@pytest.mark.parametrize("polarised", [False, True])
def test_h_and_v_beams_that_turn_match_the_direct_dft_per_correlation(dtype, rtol, polarised):
    """BEAM=everybeam's beams on an array of MeerKAT and SKA dishes (katbeam's H and V patterns at a parallactic
    angle, EveryBeam's for SKA dishes), sources out to 1.5 deg, points and Gaussians, bandwidth smearing, more
    sources than one tile: each correlation equals the plainly written J_p B J_q^H. A Stokes I sky (two sums: XX
    and YY) and a polarised one (eight)."""
    from srcnet_sim.instrument.beams import polarised_beams
    from srcnet_sim.simulate.baseline_kernel import SOURCE_TILE

    rng = np.random.default_rng(22)
    n_dish, n_src = 8, SOURCE_TILE + 30
    uvw = random_layout(rng, n_dish, scale=3000.0)
    lmn = lmn_of(rng.uniform(-0.026, 0.026, n_src), rng.uniform(-0.026, 0.026, n_src))
    offset = np.arccos(lmn[:, 2] + 1)
    diameters = np.where(np.arange(n_dish) < 5, 13.5, 15.0)  # SKA last, as in AA*: SKA-SKA pairs reuse XX for YY
    jones = polarised_beams("everybeam", lmn, offset, FREQ, diameters)
    dish_type = (diameters == 15.0).astype(int)  # types sorted by diameter: 13.5 m first
    g = np.zeros((n_src, 4))
    pa = rng.uniform(0, np.pi, 20)
    g[-20:] = np.stack([np.full(20, 3e-5**2), np.full(20, 1e-5**2), np.sin(pa), np.cos(pa)], -1)
    pol = dict(q=rng.normal(0, 0.1, n_src), u=0.05, v=-0.02) if polarised else {}
    t = terms_for(lmn, rng.random(n_src), gaussian=g, **pol)
    t = SourceTerms(lmn=t.lmn, stokes=t.stokes, beams=np.empty((0, 3, n_src)), gaussian=g, n_point=t.n_point, jones=jones)
    a1, a2 = baseline_pairs(n_dish, True)
    angle = 0.7
    got = predict_time_step(uvw, t, dish_type, FREQ, a1, a2, channel_width_hz=17.75e6, dtype=dtype, parallactic_rad=angle)
    hv = jones.at(angle)
    ref = direct_dft_jones(uvw, lmn, t.stokes, FREQ, a1, a2, hv, dish_type, 17.75e6, g)
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * np.abs(ref).max())
    meerkat = (dish_type[a1] == 0) & (dish_type[a2] == 0)
    ska = (dish_type[a1] == 1) & (dish_type[a2] == 1)
    assert np.abs(got[meerkat, :, 0] - got[meerkat, :, 3]).max() > 1e-3 * np.abs(got).max()  # H and V differ
    if not polarised:
        np.testing.assert_allclose(got[ska, :, 0], got[ska, :, 3], rtol=0, atol=rtol * np.abs(ref).max())
        assert np.abs(got[:, :, 1:3]).max() == 0.0


@pytest.mark.parametrize("n_src", [1, 7, 300])
@pytest.mark.parametrize("real_dtype", [np.float32, np.float64])
def test_the_serial_and_threaded_point_source_loops_give_the_same_bits(n_src: int, real_dtype: type):
    """Small problems run predict's compiled loops on the calling thread (PARALLEL_MIN_VALUES): what they give must
    not depend on that choice, bit for bit (a run's bytes do not depend on its sizes' side of the threshold)."""
    from srcnet_sim.simulate import predict

    rng = np.random.default_rng(n_src)
    uvw = rng.uniform(-1e4, 1e4, (144, 3))
    l, m, n1 = (np.ascontiguousarray(column) for column in rng.uniform(-0.01, 0.01, (3, n_src)))
    beams = rng.uniform(0, 1, (2, 3, n_src))
    dish_type = rng.integers(0, 2, 144)
    freq = np.array([1.0e9, 1.2e9, 1.4e9])
    phasors = []
    for kernel in (predict._phasor_kernel, predict._phasor_kernel_serial):
        z_re, z_im = np.empty((3, 144, n_src), real_dtype), np.empty((3, 144, n_src), real_dtype)
        kernel(uvw, l, m, n1, beams, dish_type, freq, z_re, z_im)
        phasors.append((z_re, z_im))
    np.testing.assert_array_equal(phasors[0][0], phasors[1][0])
    np.testing.assert_array_equal(phasors[0][1], phasors[1][1])
    assert np.abs(phasors[0][0][0] + 1j * phasors[0][1][0]).max() > 0
    weight = rng.uniform(0, 2, n_src).astype(real_dtype)
    complex_dtype = np.complex64 if real_dtype == np.float32 else np.complex128
    operands = [np.empty((n_src, 144), complex_dtype, order="F") for _ in range(2)]
    predict._weighted_conjugate_parallel(phasors[0][0][0], phasors[0][1][0], weight, operands[0])
    predict._weighted_conjugate_serial(phasors[0][0][0], phasors[0][1][0], weight, operands[1])
    np.testing.assert_array_equal(operands[0], operands[1])


@pytest.mark.parametrize("polarised", [False, True])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_point_sources_without_smearing_give_the_general_paths_bits(polarised: bool, dtype: type):
    """A sky of point sources without smearing goes through _predict_points (each channel's BLAS sums straight into
    the correlations): bit for bit what the general path gives, its (n_baseline, n_chan, 4) complex128 sums filled
    baseline by baseline and turned into correlations by _linear_correlations, autocorrelations included."""
    from srcnet_sim.simulate import predict

    rng = np.random.default_rng(5)
    n_dish, n_src = 9, 40
    uvw = random_layout(rng, n_dish)
    lmn = lmn_of(rng.uniform(-0.02, 0.02, n_src), rng.uniform(-0.02, 0.02, n_src))
    flux = rng.uniform(-0.5, 2.0, n_src)  # negative fluxes too: herk's two parts
    pol = {name: rng.uniform(-0.2, 0.2, n_src) for name in ("q", "u", "v")} if polarised else {}
    terms = terms_for(lmn, flux, **pol)
    ant1, ant2 = baseline_pairs(n_dish, True)
    dish_type = np.zeros(n_dish, dtype=np.int64)
    vis = predict_time_step(uvw, terms, dish_type, FREQ, ant1, ant2, dtype=dtype)
    real_dtype = np.float32 if dtype == np.complex64 else np.float64
    n_stokes = 4 if polarised else 1
    sums = np.zeros((len(ant1), len(FREQ), 4), dtype=np.complex128)
    for k in range(len(FREQ)):
        z_re, z_im = predict.dish_phasors(uvw, terms.lmn, terms.beams[:, k:k + 1], dish_type, FREQ[k:k + 1], real_dtype)
        for x, matrix in enumerate(predict._stokes_sums_blas(z_re[0], z_im[0], terms.stokes[k], n_stokes, dtype)):
            sums[:, k, x] += matrix[ant1, ant2]
    expected = np.empty(vis.shape, dtype=dtype)
    predict._linear_correlations(sums, ant1 == ant2, expected)
    assert vis.dtype == dtype and np.abs(vis).max() > 1
    np.testing.assert_array_equal(vis.view(np.uint8), expected.view(np.uint8))
