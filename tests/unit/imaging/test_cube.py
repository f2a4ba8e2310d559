"""Image cubes (--cube, --dirty-cube): each plane against the truth's channel-integrated line, WSClean's
-channels-out images and CASA's tclean cube of the same MS; the FITS cube read by astropy (spectral WCS) and CASA
(per-plane beams); its ObsCore record; CONTSUB=on on a galaxy with continuum and a line; bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from casa_offline import casa_home, run_casa  # noqa: F401 (casa_home is a fixture)
from conftest import run_cli, sin_pixel_position, unpack_ms, write_csv_sky
from srcnet_sim.imaging.beam import Beam
from srcnet_sim.imaging.channels import channel_groups
from srcnet_sim.imaging.cube import image_cube
from srcnet_sim.imaging.fits import ImageDescription
from srcnet_sim.imaging.imager import ImagingParameters
from srcnet_sim.imaging.msdata import MeasurementSetSource
from srcnet_sim.config import load_settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.clean import CleanParameters
from srcnet_sim.imaging.imager import make_images
from srcnet_sim.run.cube_calibrate import REPLICAS, calibration_visibilities, predict_cube_imaging
from srcnet_sim.run.plan import plan
from srcnet_sim.run.stages import SEED_CLEAN

C = 299_792_458.0
NPIX, CELL_ARCSEC = 256, 8.0
CELL = np.radians(CELL_ARCSEC / 3600)
N_CHAN, F_START, WIDTH = 40, 1.4e9, 26e3  # 40 channels of 26 kHz (5.5 km/s at 1.4 GHz)
BAND = {"START_FREQ_HZ": str(F_START), "END_FREQ_HZ": str(F_START + (N_CHAN + 0.5) * WIDTH), "FREQ_INC_HZ": str(WIDTH)}
LINE_HEADER = "ra_deg,dec_deg,i_jy,line_flux_jy_hz,line_freq_hz,w20_kms"
LINE_PIXEL, CONTINUUM_PIXEL = (40, -25), (-30, 45)  # (dx, dy) from the centre: pixel centres of the grid
F_LINE = F_START + 19.6 * WIDTH
FREQ = F_START + np.arange(N_CHAN) * WIDTH


def _env(out: Path, sky: Path, **settings: str) -> dict[str, str]:
    return {"OUT_DIR": str(out), "TELESCOPE": "SKA-MID-AA1", "BEAM": "none", "SKY_MODEL": str(sky), "NUM_TIME_STAMPS": "12",
            "SMEARING": "off", "IMAGING_NPIXEL": str(NPIX), "IMAGING_CELLSIZE": repr(float(CELL)), **BAND, **settings}


def _at(cube: np.ndarray, pixel: tuple[int, int]) -> np.ndarray:
    """(n_planes,) spectrum of a (1, n_planes, ny, nx) cube at pixel (dx, dy) from the centre."""
    return cube[0, :, NPIX // 2 + pixel[1], NPIX // 2 + pixel[0]]


@pytest.fixture(scope="module")
def cube_run(tmp_path_factory):
    """A 1e5 Jy Hz Gaussian line (W20 60 km/s, about 11 channels) and a 0.2 Jy continuum source, both on pixel centres,
    BEAM=none: the MS, both cubes and the truth."""
    out = tmp_path_factory.mktemp("cube")
    sky = write_csv_sky(out / "sky.csv", [(*sin_pixel_position(*LINE_PIXEL, CELL), 0.0, 1e5, F_LINE, 60.0),
                                          (*sin_pixel_position(*CONTINUUM_PIXEL, CELL), 0.2, 0.0, 0.0, 0.0)],
                        header=LINE_HEADER)
    result = run_cli(["run", "--vis", "--cube", "--dirty-cube", "--truth"], env=_env(out, sky))
    assert result.returncode == 0, result.stderr
    staged = out / "testing"
    return {"out": out, "staged": staged, "ms": unpack_ms(staged / "measurements.ms.tar", out / "ms"),
            "truth": fits.getdata(staged / "truth.fits", 1)}


def test_the_dirty_cube_reads_the_truth_in_every_channel_and_its_wcs_gives_the_channels(cube_run):
    """Each plane of the dirty cube reads, at the line source, the truth's channel-integrated S_APP to 2e-3 of the peak
    (the 0.2 Jy source's sidelobes there are 8e-4 of it) and the continuum source's 0.2 Jy; astropy's spectral WCS
    gives the MS's channel frequencies; BUNIT Jy/beam."""
    with fits.open(cube_run["staged"] / "dirty-cube.fits") as hdul:
        head, cube, beams = hdul[0].header, hdul[0].data, hdul["BEAMS"].data
    assert cube.shape == (1, N_CHAN, NPIX, NPIX) and head["BUNIT"] == "JY/BEAM"
    np.testing.assert_allclose(WCS(head).spectral.pixel_to_world(np.arange(N_CHAN)).to_value("Hz"), FREQ, rtol=1e-12)
    line = cube_run["truth"]["S_APP"][0]
    assert line.max() > 0.3 and np.count_nonzero(line > 0.01 * line.max()) >= 8
    np.testing.assert_allclose(_at(cube, LINE_PIXEL), line, atol=2e-3 * line.max())
    np.testing.assert_allclose(_at(cube, CONTINUUM_PIXEL), 0.2, atol=2e-3)
    assert len(beams) == N_CHAN and list(beams["CHAN"]) == list(range(N_CHAN)) and head["CASAMBM"]
    assert np.all(beams["BMAJ"] >= beams["BMIN"]) and np.all(beams["BMIN"] > 0)


def test_wsclean_channels_out_images_agree_plane_by_plane(cube_run, tmp_path: Path):
    """WSClean -channels-out 40 with the seed's clean (uniform, -mgain 0.8, -auto-threshold 3) on our MS: per channel
    the dirty images agree at the line source to 1e-3 of the peak, the restored ones to 2 % of it, and the restoring
    beams to 2 %."""
    assert shutil.which("wsclean"), "WSClean must be installed (Debian package wsclean): the README's test command does it"
    subprocess.run(["wsclean", "-quiet", "-use-wgridder", "-size", str(NPIX), str(NPIX), "-scale", f"{CELL_ARCSEC}asec",
                    "-weight", "uniform", "-niter", "50000", "-mgain", "0.8", "-auto-threshold", "3", "-pol", "I",
                    "-channels-out", str(N_CHAN), "-name", str(tmp_path / "ws"), str(cube_run["ms"])],
                   check=True, capture_output=True, timeout=600)
    ours_dirty = fits.getdata(cube_run["staged"] / "dirty-cube.fits")
    with fits.open(cube_run["staged"] / "cube.fits") as hdul:
        ours_clean, beams = hdul[0].data, hdul["BEAMS"].data
    peak = cube_run["truth"]["S_APP"][0].max()
    for k in range(N_CHAN):
        ws_dirty = fits.getdata(tmp_path / f"ws-{k:04d}-dirty.fits")[0, 0]
        ws_image, ws_head = fits.getdata(tmp_path / f"ws-{k:04d}-image.fits", header=True)
        y, x = NPIX // 2 + LINE_PIXEL[1], NPIX // 2 + LINE_PIXEL[0]
        assert ours_dirty[0, k, y, x] == pytest.approx(ws_dirty[y, x], abs=1e-3 * peak), k
        assert ours_clean[0, k, y, x] == pytest.approx(ws_image[0, 0, y, x], abs=0.02 * peak), k
        assert beams["BMAJ"][k] / 3600 == pytest.approx(ws_head["BMAJ"], rel=0.02), k
        assert beams["BMIN"][k] / 3600 == pytest.approx(ws_head["BMIN"], rel=0.02), k


def test_casa_reads_our_cube_and_its_tclean_cube_agrees(cube_run, casa_home: Path, tmp_path: Path):
    """CASA opens our cube (importfits): its spectral axis gives the channel frequencies and each plane its own
    restoring beam, as in our BEAMS table; tclean's natural-weighted dirty cube of the MS (specmode cubedata: the MS's
    topocentric channels, no regridding) reads at the line source what ours does, to 1e-3 of the peak, in every
    channel. (gridder standard: AA1's w-terms are small here, and tclean's widefield w-projection put the 0.2 Jy
    source's sidelobe at the line source 7e-4 Jy away from standard gridding, WSClean's and ours.)"""
    ms, image = cube_run["ms"], tmp_path / "tclean"
    casa = run_casa(casa_home, f"""
        import json
        from casatasks import exportfits, importfits, tclean
        from casatools import image
        importfits(fitsimage={str(cube_run["staged"] / "cube.fits")!r}, imagename="ours.im", overwrite=True)
        ia = image()
        ia.open("ours.im")
        names = ia.coordsys().names()
        axis = names.index("Frequency")
        freqs, majors = [], []
        for k in range({N_CHAN}):
            pixel = [0, 0, 0, 0]
            pixel[axis] = k
            freqs.append(ia.toworld(pixel, "n")["numeric"][axis])
            majors.append(ia.restoringbeam(channel=k, polarization=0)["major"]["value"])
        ia.close()
        tclean(vis={str(ms)!r}, imagename={str(image)!r}, specmode="cubedata", gridder="standard",
               weighting="natural", imsize=[{NPIX}, {NPIX}], cell="{CELL_ARCSEC}arcsec", stokes="I", niter=0,
               pbcor=False)
        exportfits(imagename={str(image)!r} + ".image", fitsimage={str(image)!r} + ".fits")
        print(json.dumps({{"freqs": freqs, "majors_arcsec": majors}}))
        """, cwd=tmp_path)
    np.testing.assert_allclose(casa["freqs"], FREQ, rtol=1e-12)
    with fits.open(cube_run["staged"] / "cube.fits") as hdul:
        np.testing.assert_allclose(casa["majors_arcsec"], hdul["BEAMS"].data["BMAJ"], rtol=1e-6)
    tclean_cube = np.squeeze(fits.getdata(f"{image}.fits"))  # (n_chan, ny, nx)
    ours_path = tmp_path / "natural-dirty-cube.fits"  # natural weighting: the same sidelobes of the continuum source
    image_cube(MeasurementSetSource(ms), ImagingParameters(NPIX, CELL, "natural"), None, channel_groups(N_CHAN, None),
               {"dirty": ours_path}, ImageDescription((0.0, 0.0), CELL, 0.0, 0.0, 0.0, 0.0, "", Beam(0.0, 0.0, 0.0)))
    ours = fits.getdata(ours_path)
    assert tclean_cube.shape == (N_CHAN, NPIX, NPIX)
    peak = cube_run["truth"]["S_APP"][0].max()
    y, x = NPIX // 2 + LINE_PIXEL[1], NPIX // 2 + LINE_PIXEL[0]
    np.testing.assert_allclose(tclean_cube[:, y, x], ours[0, :, y, x], atol=1e-3 * peak)


def test_reordering_reads_the_ms_once_and_changes_no_byte_of_the_cubes(cube_run, tmp_path: Path, monkeypatch):
    """imaging.reorder: with a small chunk, so that no plane is held in memory and every clean cycle reads again,
    the planes read the reordered files only (one pass over the MS's rows) and both cubes equal those imaged
    straight from the MS bit for bit; the scratch files are gone afterwards."""
    from srcnet_sim.imaging import cube as cube_module
    from srcnet_sim.imaging.clean import CleanParameters

    ms = MeasurementSetSource(cube_run["ms"])
    groups = channel_groups(N_CHAN, 8)
    desc = ImageDescription((0.0, 0.0), CELL, 0.0, 0.0, 0.0, 0.0, "", Beam(0.0, 0.0, 0.0))
    clean = CleanParameters(niter=200, mgain=0.8, auto_threshold=3.0)
    monkeypatch.setattr(cube_module, "CHUNK_SAMPLES", ms.n_rows * 2)  # a plane of 5 channels: several chunks
    reads = []
    original = MeasurementSetSource.read_channels
    monkeypatch.setattr(MeasurementSetSource, "read_channels",
                        lambda self, row, n, channels: reads.append((row, n, channels)) or original(self, row, n, channels))
    cubes = {}
    for reorder in (True, False):
        reads.clear()
        paths = {"dirty": tmp_path / f"dirty-{reorder}.fits", "cleaned": tmp_path / f"cleaned-{reorder}.fits"}
        scratch = tmp_path / f"scratch-{reorder}"
        scratch.mkdir()
        image_cube(ms, ImagingParameters(NPIX, CELL), clean, groups, paths, desc, reorder=reorder, scratch=scratch)
        cubes[reorder] = {kind: fits.getdata(path) for kind, path in paths.items()}
        print(f"reorder={reorder}: {sum(n for _, n, _ in reads)} rows read of {ms.n_rows}, {len(reads)} reads")
        assert list(scratch.iterdir()) == []
        if reorder:  # one pass over every row, all channels at once
            assert sum(n for _, n, _ in reads) == ms.n_rows and {c for *_, c in reads} == {(0, N_CHAN)}
        else:
            assert sum(n for _, n, _ in reads) >= len(groups) * ms.n_rows  # each plane reads all rows, every cycle
    for kind in ("dirty", "cleaned"):
        assert np.array_equal(cubes[True][kind], cubes[False][kind], equal_nan=True)


def test_the_cube_sidecar_is_an_obscore_cube(cube_run):
    """dataproduct_type cube, em_xel the planes, em_min/em_max the band's edges, em_res_power f / df."""
    meta = json.loads((cube_run["staged"] / "cube.fits.meta").read_text())["meta"]
    assert meta["dataproduct_type"] == "cube" and meta["em_xel"] == N_CHAN and meta["calib_level"] == 3
    assert meta["em_min"] == pytest.approx(C / (FREQ[-1] + WIDTH / 2), rel=1e-12)
    assert meta["em_max"] == pytest.approx(C / (FREQ[0] - WIDTH / 2), rel=1e-12)
    assert meta["em_res_power"] == pytest.approx(FREQ.mean() / WIDTH, rel=1e-9)
    assert meta["s_xel1"] == meta["s_xel2"] == NPIX


def test_contsub_leaves_a_galaxys_line_and_takes_its_continuum(tmp_path: Path):
    """A galaxy with 0.5 Jy of continuum and a 1e5 Jy Hz line, and a 1 Jy continuum source, NOISE=on. With CONTSUB=on
    the cube at the galaxy reads only the line: its integrated flux agrees with the truth's within 4 sigma of the
    noise (measured off the sources), and the continuum source's pixel reads 0 within the noise; with CONTSUB=off the
    galaxy reads continuum + line."""
    sky = write_csv_sky(tmp_path / "sky.csv", [(*sin_pixel_position(*LINE_PIXEL, CELL), 0.5, 1e5, F_LINE, 60.0),
                                               (*sin_pixel_position(*CONTINUUM_PIXEL, CELL), 1.0, 0.0, 0.0, 0.0)],
                        header=LINE_HEADER)
    spectra = {}
    for contsub in ("off", "on"):
        out = tmp_path / contsub
        out.mkdir()
        result = run_cli(["run", "--dirty-cube", "--truth"], env=_env(out, sky, CONTSUB=contsub, NOISE="on"))
        assert result.returncode == 0, result.stderr
        cube = fits.getdata(out / "testing" / "dirty-cube.fits")
        spectra[contsub] = (_at(cube, LINE_PIXEL), _at(cube, CONTINUUM_PIXEL), cube[0, :, 20:60, 20:60])
    truth = fits.getdata(tmp_path / "on" / "testing" / "truth.fits", 1)
    line, flux = truth["S_APP"][0], truth["LINE_S_APP"][0]  # the galaxy's per-channel Stokes I and line flux (Jy Hz)
    galaxy, continuum, empty = spectra["on"]
    sigma = float(np.std(empty))  # the noise of one plane, Jy/beam
    assert 0 < sigma < 0.01
    assert np.sum(galaxy) * WIDTH == pytest.approx(flux, abs=4 * sigma * np.sqrt(N_CHAN) * WIDTH)
    assert np.abs(continuum).max() < 5 * sigma
    np.testing.assert_allclose(galaxy, line - 0.5, atol=5 * sigma)  # S_APP holds the continuum too
    galaxy_off, continuum_off, _ = spectra["off"]
    np.testing.assert_allclose(galaxy_off, line, atol=5 * sigma)
    np.testing.assert_allclose(continuum_off, 1.0, atol=5 * sigma)


@pytest.mark.parametrize("channels_out, phrase", [(3, "equal groups"), (41, "equal groups"), (0, "greater than or equal")])
def test_a_bad_channels_out_is_one_line_before_any_work(tmp_path: Path, channels_out: int, phrase: str):
    """IMAGING_CHANNELS_OUT that does not split the channels evenly (or exceeds them, or is 0): exit 2, one line naming
    it, nothing staged."""
    result = run_cli(["run", "--cube"], env={"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA0.5", **BAND,
                                             "IMAGING_CHANNELS_OUT": str(channels_out)})
    errors = [line for line in result.stderr.splitlines() if " error: " in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert errors[0].startswith("srcnet-sim: error: IMAGING_CHANNELS_OUT:") and phrase in errors[0]
    assert not any(tmp_path.rglob("*.fits"))


def test_channel_groups_are_equal_and_adjacent():
    assert channel_groups(40, None) == [(k, k + 1) for k in range(40)]
    assert channel_groups(40, 8) == [(5 * k, 5 * k + 5) for k in range(8)]
    with pytest.raises(UserInputError, match="choose one of"):
        channel_groups(40, 7)


def test_a_cube_too_large_for_the_staging_volume_stops_before_any_work(tmp_path: Path):
    """1,000 planes of 4096^2 pixels (67 GB): `run --cube` refuses in one line naming OUT_DIR, nothing written."""
    band = {"START_FREQ_HZ": "1.4e9", "END_FREQ_HZ": str(1.4e9 + 1000.5 * 26e3), "FREQ_INC_HZ": "26e3"}
    result = run_cli(["run", "--cube"], env={"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA0.5", **band,
                                             "IMAGING_NPIXEL": "4096", "NUM_TIME_STAMPS": "2"})
    errors = [line for line in result.stderr.splitlines() if " error: " in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "OUT_DIR" in errors[0] and "cube.fits" in errors[0]
    assert not any(tmp_path.rglob("*.fits"))


def test_the_cube_time_calibration_repeats_samples_without_changing_the_images(tmp_path: Path):
    """run.cube_calibrate's premise: the calibration plane with every sample repeated REPLICAS times gives the same
    dirty image and PSF (to 1e-6 of the peak) and clean (major cycles; iterations to 1 %) as without, so the time
    difference is the gridding's per-sample cost (the restored images are not compared: float32 rounding of the
    dirty image moves a few clean components, by 1 % of the peak); `estimate --cube` prints the prediction made of
    its parts."""
    env = {"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA1", "SKY_MODEL": "SYNTHETIC_HI", "SYNTHETIC_SOURCES": "20",
           "NUM_TIME_STAMPS": "12", "NOISE": "on", "IMAGING_NPIXEL": "128", **BAND}
    run_plan = plan(load_settings(environ=env), {"cube"})
    obs = run_plan.observation.with_geometry()
    params = ImagingParameters(run_plan.imaging.npix, run_plan.imaging.cell_rad, allow_uv_cut=True, threads=1)
    clean = CleanParameters(**SEED_CLEAN)
    once, repeated = (make_images(calibration_visibilities(obs, 20, 1, n), params, clean) for n in (1, REPLICAS))
    assert repeated.n_visibilities == REPLICAS * once.n_visibilities
    assert once.clean.major_cycles == repeated.clean.major_cycles >= 1
    assert abs(once.clean.iterations - repeated.clean.iterations) <= 1 + 0.01 * once.clean.iterations  # rounding
    for image, tolerance in (("dirty", 1e-6), ("psf", 1e-6)):
        difference = np.abs(getattr(repeated, image) - getattr(once, image)).max() / np.abs(getattr(once, image)).max()
        print(f"{image}: largest difference {difference:.2e} of the peak")
        assert difference < tolerance, image
    p = predict_cube_imaging(run_plan, tmp_path)
    # Measured parts: their signs, not their sizes (timings on a shared machine; fixed_s is clipped at 0 when noise
    # makes the repeated plane's extra time exceed the single plane's whole time).
    assert p.planes == N_CHAN and p.plane_s > 0 and p.fixed_s >= 0 and p.per_sample_s >= 0
    assert p.total_s == pytest.approx(p.reorder_s + p.planes * p.plane_s / p.workers)
    printed = run_cli(["estimate", "--cube"], env=env)
    assert printed.returncode == 0, printed.stderr
    lines = [line for line in printed.stdout.splitlines() if line.startswith("cube imaging time")]
    assert len(lines) == 1 and f"{N_CHAN} planes x " in lines[0], printed.stdout
