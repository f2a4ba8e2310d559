"""The line QA of a cube (qa.line_finder, qa.line_report, `srcnet-sim qa CUBE TRUTH`) against analytic answers:
synthetic cubes of beam-shaped point sources with Gaussian lines of known integrated flux and centre frequency in
Gaussian noise of known rms (correlated over the beam, as in an image), per-plane restoring beams in a BEAMS table;
a pure-noise cube; and one small simulated and imaged line run."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage
from scipy.special import ndtr

from conftest import run_cli, sin_pixel_position, write_csv_sky
from srcnet_sim.qa import matching
from srcnet_sim.qa.cube_io import is_line_cube
from srcnet_sim.qa.line_finder import FinderParameters, find_lines, w20_planes

FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))
W20_PER_SIGMA = 2 * np.sqrt(2 * np.log(5))
NPIX, N_PLANES, CELL_ARCSEC = 128, 64, 2.0
F0, DF = 1.40e9, 25e3  # plane k is centred at F0 + k DF (Hz)
SIGMA = 1e-3  # Jy/beam, the noise rms of every plane
BEAM_ARCSEC = (7.0, 11.0)  # BMAJ = BMIN of the first and last plane, linear in between: beam areas differ 2.5 x
RA0, DEC0 = 150.0, 2.0


def cube_header() -> fits.Header:
    h = fits.Header()
    cell = CELL_ARCSEC / 3600
    for i, (ctype, crval, cdelt, crpix, cunit) in enumerate(
            [("RA---SIN", RA0, -cell, NPIX / 2 + 1, "deg"), ("DEC--SIN", DEC0, cell, NPIX / 2 + 1, "deg"),
             ("FREQ", F0, DF, 1.0, "Hz"), ("STOKES", 1.0, 1.0, 1.0, "")], start=1):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CDELT{i}"], h[f"CRPIX{i}"], h[f"CUNIT{i}"] = ctype, crval, cdelt, crpix, cunit
    h["BUNIT"], h["RADESYS"], h["EQUINOX"], h["SPECSYS"], h["CASAMBM"] = "JY/BEAM", "FK5", 2000.0, "TOPOCENT", True
    return h


def write_cube(path: Path, sources: np.ndarray, seed: int, beams: bool = True) -> Path:
    """A (1, N_PLANES, NPIX, NPIX) Jy/beam cube: each source (ra, dec deg, F Jy Hz, nu0 Hz, W20 Hz) a point source
    (the plane's beam, peak = its flux density) with a Gaussian line whose plane k holds its exact mean over the plane,
    F (Phi(hi) - Phi(lo)) / DF; plus noise of rms SIGMA whose autocorrelation is the plane's beam (white noise smoothed
    by a Gaussian of sigma_beam / sqrt(2), scaled by 2 sqrt(pi) sigma_k to unit rms)."""
    rng = np.random.default_rng(seed)
    header = cube_header()
    wcs = WCS(header).celestial
    bmaj = np.linspace(*BEAM_ARCSEC, N_PLANES)
    freq = F0 + np.arange(N_PLANES) * DF
    cube = np.zeros((1, N_PLANES, NPIX, NPIX), np.float32)
    yy, xx = np.mgrid[0:NPIX, 0:NPIX]
    for ra, dec, flux, centre, w20 in sources:
        x, y = wcs.world_to_pixel_values(ra, dec)
        s = w20 / W20_PER_SIGMA
        per_plane = flux * (ndtr((freq + DF / 2 - centre) / s) - ndtr((freq - DF / 2 - centre) / s)) / DF  # Jy
        for k in np.flatnonzero(per_plane > 1e-9 * flux):
            sb = bmaj[k] / CELL_ARCSEC / FWHM_PER_SIGMA
            cube[0, k] += per_plane[k] * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sb**2))
    for k in range(N_PLANES):
        kernel = bmaj[k] / CELL_ARCSEC / FWHM_PER_SIGMA / np.sqrt(2)
        white = rng.standard_normal((NPIX, NPIX))
        cube[0, k] += SIGMA * 2 * np.sqrt(np.pi) * kernel * ndimage.gaussian_filter(white, kernel, mode="wrap")
    hdus = [fits.PrimaryHDU(cube, header)]
    if beams:
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("BMAJ", "1E", "arcsec", array=bmaj), fits.Column("BMIN", "1E", "arcsec", array=bmaj),
             fits.Column("BPA", "1E", "deg", array=np.zeros(N_PLANES)),
             fits.Column("CHAN", "1J", array=np.arange(N_PLANES)), fits.Column("POL", "1J", array=np.zeros(N_PLANES))],
            name="BEAMS"))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_truth(path: Path, sources: np.ndarray) -> Path:
    """A truth file (HDU TRUTH) with the line columns of products.truth, LINE_S_APP = LINE_FLUX (no primary beam)."""
    n = len(sources)
    col = lambda name, unit, values: fits.Column(name, "D", unit=unit, array=values)  # noqa: E731
    table = fits.BinTableHDU.from_columns(
        [col("RA", "deg", sources[:, 0]), col("DEC", "deg", sources[:, 1]), col("S_APP_MEAN", "Jy", np.zeros(n)),
         col("DC_MAJ", "deg", np.zeros(n)), col("LINE_FLUX", "Jy Hz", sources[:, 2]),
         col("LINE_FREQ", "Hz", sources[:, 3]), col("LINE_W20", "Hz", sources[:, 4]),
         col("LINE_SIG", "Hz", np.zeros(n)), col("LINE_S_APP", "Jy Hz", sources[:, 2])], name="TRUTH")
    table.header["NOISE"] = "on"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    return path


def grid_sources(seed: int) -> np.ndarray:
    """12 lines on a 4 x 3 grid 60 arcsec apart (jittered by a pixel), F = 600 to 5000 Jy Hz, centres anywhere within
    planes 15-48, W20 100-300 kHz (4-12 planes): integrated S/N about 4-25 for the finder's masks."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(12):
        i, j = divmod(k, 3)
        dx, dy = (-45 + 30 * i + rng.uniform(-1, 1)), (-30 + 30 * j + rng.uniform(-1, 1))  # pixels
        rows.append((RA0 - dx * CELL_ARCSEC / 3600 / np.cos(np.radians(DEC0)), DEC0 + dy * CELL_ARCSEC / 3600,
                     600.0 + 400.0 * k, F0 + rng.uniform(15, 48) * DF, rng.uniform(100e3, 300e3)))
    return np.array(rows)


@pytest.fixture(scope="module")
def field(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("lines")
    fields = []
    for seed in (1, 2):
        sources = grid_sources(seed)
        cube = write_cube(tmp / f"cube{seed}.fits", sources, seed)
        fields.append({"sources": sources, "cube": cube, "truth": write_truth(tmp / f"truth{seed}.fits", sources),
                       "result": find_lines(cube)})
    return {"tmp": tmp, "fields": fields}


def _nearest(found, ra: float, dec: float) -> tuple[int, float]:
    sep = np.hypot((found.ra_deg - ra) * np.cos(np.radians(dec)), found.dec_deg - dec) * 3600
    return int(np.argmin(sep)), float(sep.min())


def test_lines_are_found_where_and_at_the_frequency_and_flux_they_were_put(field: dict):
    """Every line of F >= 2000 Jy Hz (measured S/N >= 8) is found, and no spurious one; each bright one (S/N >= 10)
    lies within 0.15 beam of its position and 0.5 plane of its centre frequency (analytic centroid errors at S/N 10:
    sigma_b / SNR ~ 0.04 beam, sigma_line / SNR < 0.3 plane), its flux within 4 sigma_F + 3 % of the truth, its W20
    within 25 %. Over the 24 lines, the median recovered / true flux is 1 within 3 % and (F - F_true) / sigma_F has an
    rms between 0.5 and 1.5: the flux error the finder states is the scatter it has. The beams of the planes differ
    by 2.5 x in area: one beam for all would bias the end planes' fluxes by -40 % to +50 % (the pull rms was then 1.8)."""
    ratios, pulls = [], []
    for f in field["fields"]:
        found, beam_arcsec = f["result"].detections, np.linspace(*BEAM_ARCSEC, N_PLANES)
        assert len(f["result"].negatives) == 0
        for ra, dec, flux, centre, w20 in f["sources"]:
            k, sep = _nearest(found, ra, dec)
            if flux >= 2000:
                assert sep < 0.5 * BEAM_ARCSEC[0], (flux, sep)
            if sep > 0.5 * BEAM_ARCSEC[0]:
                continue
            snr, error = found.snr[k], found.line_flux_error_jy_hz[k]
            ratios.append(found.line_flux_jy_hz[k] / flux)
            pulls.append((found.line_flux_jy_hz[k] - flux) / error)
            if snr >= 10:
                plane = int(round((centre - F0) / DF))
                assert sep < 0.15 * beam_arcsec[plane]
                assert abs(found.freq_hz[k] - centre) < 0.5 * DF
                assert abs(found.line_flux_jy_hz[k] - flux) < 4 * error + 0.03 * flux
                assert found.w20_hz[k] == pytest.approx(w20, rel=0.25)
        assert len(found) == sum(1 for s in f["sources"] if _nearest(found, s[0], s[1])[1] < 0.5 * BEAM_ARCSEC[0])
    assert len(ratios) >= 20
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)
    assert 0.5 < np.sqrt(np.mean(np.square(pulls))) < 1.5
    noise = field["fields"][0]["result"].noise_jy_per_beam
    np.testing.assert_allclose(noise, SIGMA, rtol=0.15)  # MAD of 16k correlated pixels: ~5 % scatter


def test_a_pure_noise_cube_gives_no_detection_at_5_sigma_and_the_negatives_count_false_ones(tmp_path: Path):
    """Noise alone (1e6 voxels, beam-correlated): no detection at the default 5 sigma (none either in ten such cubes
    when this was written); at 4 sigma noise makes a few, and the negative components -- the same search on -I --
    are as many (Poisson), so the report's negative count estimates the false detections."""
    cube = write_cube(tmp_path / "noise.fits", np.zeros((0, 5)), seed=11)
    result = find_lines(cube)
    assert len(result.detections) == 0 and len(result.negatives) == 0
    positive = negative = 0
    for seed in (11, 12, 13):
        cube = write_cube(tmp_path / f"noise{seed}.fits", np.zeros((0, 5)), seed=seed)
        loose = find_lines(cube, FinderParameters(threshold_sigma=4.0))
        positive, negative = positive + len(loose.detections), negative + len(loose.negatives)
    assert positive > 0 and negative > 0
    assert abs(positive - negative) <= 3 * np.sqrt(positive + negative)


def test_slabs_of_a_few_planes_find_the_same_lines(field: dict):
    """Read 6 planes at a time (the cube is memory-bounded by slab_bytes) the finder links components across the
    slab boundaries and finds the same detections, with the same fluxes."""
    f = field["fields"][0]
    small = find_lines(f["cube"], FinderParameters(slab_bytes=NPIX * NPIX * (6 * 40 + 14 * 4)))
    whole = f["result"].detections
    assert len(small.detections) == len(whole)
    order_a, order_b = np.argsort(small.detections.freq_hz), np.argsort(whole.freq_hz)
    np.testing.assert_allclose(small.detections.line_flux_jy_hz[order_a], whole.line_flux_jy_hz[order_b], rtol=1e-9)


def test_w20_of_sampled_profiles():
    """A Gaussian sampled at 0.2 sigma: W20 = 2 sqrt(2 ln 5) sigma within 1 %; a 10-plane top hat: 10 + 2 x 0.5 x 0.8
    planes (the linear crossing of 20 % between the last plane in and the first out); an empty spectrum: 0."""
    x = np.arange(-50, 51) * 0.2
    assert w20_planes(np.exp(-0.5 * x**2)) * 0.2 == pytest.approx(W20_PER_SIGMA, rel=0.01)
    top = np.zeros(30)
    top[10:20] = 1.0
    assert w20_planes(top) == pytest.approx(9 + 2 * 0.8)
    assert w20_planes(np.zeros(5)) == 0.0


def test_lines_match_in_position_and_frequency():
    """Two truth lines at one position but different frequencies each match their own detection; a detection at the
    right place but outside the frequency window, or one beyond the radius, matches nothing."""
    match = matching.nearest_in_space_and_frequency(
        np.array([10.0, 10.0]), np.array([0.0, 0.0]), np.array([1.40e9, 1.41e9]), np.array([1e5, 1e5]),
        np.array([10.0, 10.0, 10.0, 10.01]), np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.41e9, 1.40e9, 1.405e9, 1.40e9]),
        radius_deg=2 / 3600)
    assert sorted(zip(match.truth_index.tolist(), match.detection_index.tolist())) == [(0, 1), (1, 0)]


def test_qa_on_a_cube_writes_the_line_report(field: dict, tmp_path: Path):
    """`srcnet-sim qa CUBE TRUTH` on a cube scores lines: exit 0, the line report's files, completeness and
    reliability 100 % above S/N 10, median flux ratio 1 within 5 %, median frequency offset within 0.2 plane."""
    f = field["fields"][0]
    result = run_cli(["qa", str(f["cube"]), str(f["truth"]), "--out-dir", str(tmp_path), "--name", "c_"])
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c_line-qa-completeness.png", "c_line-qa-detections.fits", "c_line-qa-map.png",
                     "c_line-qa-recovery.png", "c_line-qa.json"]
    s = json.loads((tmp_path / "c_line-qa.json").read_text())
    assert s["counts"]["truth_in_cube"] == 12 and s["flux_reference"] == "apparent"
    c, r = s["completeness_above_snr_10"], s["reliability_above_snr_10"]
    assert c["fraction"] == 1.0 and c["n"] >= 8
    assert r["fraction"] == 1.0
    assert s["flux_ratio"]["above_snr_10"]["median"] == pytest.approx(1.0, abs=0.05)
    assert abs(s["freq_offset_planes"]["median"]) < 0.2
    assert s["restoring_beam"]["major_arcsec_range"] == pytest.approx(list(BEAM_ARCSEC), rel=1e-6)
    assert "completeness 100.0 %" in result.stderr
    table = fits.getdata(tmp_path / "c_line-qa-detections.fits", "LINES")
    assert len(table) == s["counts"]["detections"] and "LINE_FLUX" in table.names


def test_qa_on_a_cube_without_beams_is_one_line_and_a_single_plane_is_no_cube(field: dict, tmp_path: Path):
    """A cube with no BEAMS table and no BMAJ: exit 5, one line naming the file and the missing beam. A FITS image of
    one FREQ plane is no line cube (it goes to the continuum QA)."""
    cube = write_cube(tmp_path / "nobeam.fits", np.zeros((0, 5)), seed=3, beams=False)
    result = run_cli(["qa", str(cube), str(field["fields"][0]["truth"]), "--out-dir", str(tmp_path)])
    assert result.returncode == 5
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["srcnet-sim: error: qa: nobeam.fits has no restoring beam (neither a BEAMS table nor BMAJ/BMIN "
                      "in its header)"]
    assert is_line_cube(field["fields"][0]["cube"])
    header = cube_header()
    fits.PrimaryHDU(np.zeros((1, 1, 8, 8), np.float32), header).writeto(tmp_path / "plane.fits")
    assert not is_line_cube(tmp_path / "plane.fits")


# A small simulated line run, imaged into a cleaned cube (the settings of tests/unit/imaging/test_cube.py, smaller).
CELL = np.radians(8.0 / 3600)
RUN_PLANES, RUN_START, RUN_WIDTH = 32, 1.4e9, 26e3
LINES = [(20, -15, 2e4, 10.3), (-25, 20, 1e4, 16.6), (30, 30, 5e3, 21.2), (-20, -25, 3e4, 8.8)]  # dx, dy, F, plane


def test_qa_of_a_simulated_and_imaged_line_cube(tmp_path: Path):
    """Four Gaussian lines (W20 60 km/s, 5e3-3e4 Jy Hz) simulated with noise on SKA-MID-AA1 and imaged by `run --cube`
    (128 x 128 px of 8 arcsec, 32 planes of 26 kHz; --qa: the run's QA product has the line report `qa` writes
    of the staged cube): `qa` finds all four, at their frequencies within 1 plane and
    their positions within 0.3 beam; it recovers 65-105 % of their flux (75-88 % when this was written: the 8-dish
    cube, cleaned to 3 sigma, keeps the rest in its residual, whose dirty-beam sum is near 0; boxes round the sources
    in the cube itself hold 55-85 %)."""
    rows = [(*sin_pixel_position(dx, dy, CELL), 0.0, flux, RUN_START + plane * RUN_WIDTH, 60.0)
            for dx, dy, flux, plane in LINES]
    sky = write_csv_sky(tmp_path / "sky.csv", rows, header="ra_deg,dec_deg,i_jy,line_flux_jy_hz,line_freq_hz,w20_kms")
    env = {"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA1", "BEAM": "none", "SKY_MODEL": str(sky),
           "NUM_TIME_STAMPS": "12", "SMEARING": "off", "IMAGING_NPIXEL": "128", "IMAGING_CELLSIZE": repr(float(CELL)),
           "NOISE": "on", "START_FREQ_HZ": str(RUN_START), "END_FREQ_HZ": str(RUN_START + (RUN_PLANES + 0.5) * RUN_WIDTH),
           "FREQ_INC_HZ": str(RUN_WIDTH)}
    result = run_cli(["run", "--cube", "--truth", "--qa"], env=env)
    assert result.returncode == 0, result.stderr
    staged = tmp_path / "testing"
    result = run_cli(["qa", str(staged / "cube.fits"), str(staged / "truth.fits"), "--out-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    s = json.loads((tmp_path / "cube-line-qa.json").read_text())
    with tarfile.open(staged / "qa.tar") as archive:  # the run's own QA product holds the same line report
        member = next(m for m in archive.getmembers() if m.name.endswith("/line-qa.json"))
        in_run = json.loads(archive.extractfile(member).read())
    assert in_run["counts"] == s["counts"] and in_run["flux_ratio"] == s["flux_ratio"]
    assert s["counts"]["truth_in_cube"] == 4 and s["counts"]["matched"] == 4
    assert s["completeness_above_snr_10"]["fraction"] == 1.0
    assert 0.65 < s["flux_ratio"]["all"]["p16"] and s["flux_ratio"]["all"]["p84"] < 1.05
    assert max(abs(s["freq_offset_planes"][k]) for k in ("p16", "p84")) < 1.0
    assert s["offset_beams"]["p84"] < 0.3
