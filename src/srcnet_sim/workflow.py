"""Orchestration of one run: settings -> telescope, sky, observation -> MeasurementSet. No numerics here."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

from srcnet_sim import __version__
from srcnet_sim.config import Settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.clean import CleanParameters
from srcnet_sim.products import naming, obscore, sidecar, staging
from srcnet_sim.ms.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.progress import logger, track
from srcnet_sim.resources import Estimate, estimate, free_bytes, human
from srcnet_sim.simulate import geometry
from srcnet_sim.simulate.beams import power_beam_fwhm_rad
from srcnet_sim.overlap import write_behind
from srcnet_sim.simulate.backend import resolve_backend
from srcnet_sim.simulate.observation import Observation, TimeStep, gpu_block_device_bytes, simulate
from srcnet_sim.sky.catalogues import load_sky_model
from srcnet_sim.telescope import Telescope, load_telescope

PRODUCT_NAMES = {"vis": "measurements.ms", "dirty": "dirty.fits", "clean": "cleaned.fits"}
PRODUCTS = tuple(PRODUCT_NAMES)
MS_ARCHIVE_SUFFIX = ".tar"
NOTIFICATION_NAME = "notification.json"
# The seed's WSClean cleaning: -niter 50000 -mgain 0.8 -auto-threshold 3, uniform weighting.
SEED_CLEAN = CleanParameters(gain=0.1, mgain=0.8, niter=50_000, auto_threshold=3.0)
SEED_DISH_DIAMETER_M = 15.0
FILTER_RADIUS_FWHM = 3.0
HORIZON_CHECK_POINTS = 1441  # elevation is smooth: at most one check a minute over a day


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, resolved and validated before any work starts."""

    settings: Settings
    telescope: Telescope
    observation: Observation
    estimate: Estimate
    product_dir: Path
    products: frozenset[str]

    def file_name(self, product: str) -> str:
        """The seed's file name of a product: <FILE_PREFIX>measurements.ms, ...dirty.fits, ...cleaned.fits."""
        return f"{self.settings.file_prefix}{PRODUCT_NAMES[product]}"

    def staged_name(self, product: str) -> str:
        """The name in the staging area and in Rucio: a MeasurementSet (a directory) is staged as a tar."""
        return self.file_name(product) + (MS_ARCHIVE_SUFFIX if product == "vis" else "")

    @property
    def made(self) -> tuple[str, ...]:
        """Products made: the chosen ones and what they need (images need the MS, clean the dirty image)."""
        needed = set(self.products)
        if needed & {"dirty", "clean"}:
            needed.add("vis")
        if "clean" in needed:
            needed.add("dirty")
        return tuple(p for p in PRODUCTS if p in needed)


    def product_bytes(self, product: str) -> int:
        e = self.estimate
        return e.ms_expected_bytes if product == "vis" else e.image_file_bytes

    def cell_rad(self) -> float:
        """IMAGING_CELLSIZE, or the seed's FOV / npixel."""
        s = self.settings
        return s.imaging_cellsize if s.imaging_cellsize is not None else field_of_view_rad(s) / s.imaging_npixel


def field_of_view_rad(settings: Settings) -> float:
    """The seed's field of view: 1.25 lambda_mid / 15 m, lambda_mid at the middle of the band."""
    mid_hz = 0.5 * (settings.start_freq_hz + settings.end_freq_hz)
    return float(power_beam_fwhm_rad(mid_hz, SEED_DISH_DIAMETER_M))


def _check_names(settings: Settings) -> None:
    naming.check_scope(settings.rucio_namespace)
    naming.check_name(settings.obs_id, "OBS_ID")  # the Rucio dataset of the run's products
    for product in PRODUCTS:
        naming.check_name(settings.file_prefix + PRODUCT_NAMES[product] + (MS_ARCHIVE_SUFFIX if product == "vis" else ""))


def plan(settings: Settings, products: set[str] | frozenset[str] = frozenset({"vis"})) -> Plan:
    """Resolve telescope, times, sky and sizes; raise UserInputError on anything a user can fix."""
    if not products:
        raise UserInputError("--vis", "choose at least one product to ingest: --vis, --dirty or --clean")
    _check_names(settings)
    telescope = load_telescope(settings.telescope)
    ra0, dec0 = settings.phase_centre_rad
    start = Time(settings.start_datetime, scale="utc")
    times_s = geometry.mjd_seconds(geometry.sample_times(start, settings.length_s, settings.num_time_stamps))
    start_s, end_s = times_s[0] - settings.interval_s / 2, times_s[-1] + settings.interval_s / 2
    check_s = np.linspace(start_s, end_s, min(len(times_s) + 2, HORIZON_CHECK_POINTS))
    elevation = np.degrees(geometry.elevation_rad(telescope.itrf_m.mean(axis=0), check_s, ra0, dec0))
    if elevation.min() <= 0.0:
        raise UserInputError(
            "START_DATE_AND_TIME",
            f"the phase centre (RA {settings.phase_center_ra_deg} deg, Dec {settings.phase_center_dec_deg} deg) is below "
            f"the horizon during the observation: elevation {elevation.min():.1f} to {elevation.max():.1f} deg; "
            "choose a start time or phase centre that keeps it above 0 deg",
        )
    radius = FILTER_RADIUS_FWHM * field_of_view_rad(settings)
    sky = load_sky_model(settings.sky_model, settings.sky_model_path, ra0, dec0, radius, settings.synthetic_sources, settings.seed)
    observation = Observation(
        telescope=telescope, sky=sky, ra_rad=ra0, dec_rad=dec0, times_s=times_s, interval_s=settings.interval_s,
        freq_hz=settings.freq_hz, channel_width_hz=settings.freq_inc_hz, beam=settings.beam,
        autocorrelations=settings.correlations == "cross+auto", smearing=settings.smearing,
        noise=settings.noise == "on", seed=settings.seed,
        dtype=np.complex128 if settings.precision == "double" else np.complex64,
    )
    sizes = estimate(settings.n_channels, settings.num_time_stamps, telescope.n_dish, observation.autocorrelations,
                     len(sky), settings.imaging_npixel, settings.precision == "double")
    return Plan(settings, telescope, observation, sizes, Path(settings.out_dir) / settings.rucio_namespace,
                frozenset(products))


def preflight(run_plan: Plan) -> None:
    """Refuse to start, with the numbers, when OUT_DIR or the temporary directory cannot hold its products."""
    for setting, where, products in (("OUT_DIR", run_plan.product_dir, run_plan.products),
                                     ("TMPDIR", Path(tempfile.gettempdir()), run_plan.made)):
        need = sum(run_plan.product_bytes(p) for p in products)
        free = free_bytes(where)
        if need and free < need:
            name_of = run_plan.staged_name if setting == "OUT_DIR" else run_plan.file_name
            names = ", ".join(name_of(p) for p in PRODUCTS if p in products)
            raise UserInputError(setting, f"{where} has {human(free)} free but {names} need about {human(need)}; "
                                 "enlarge the volume or shorten the run")


def history_lines(settings: Settings) -> tuple[str, ...]:
    """HISTORY messages: the software version, every setting (seed included), as JSON."""
    return (f"srcnet-sim {__version__}", "settings " + json.dumps(settings.model_dump(), sort_keys=True))


def write_measurement_set(run_plan: Plan, path: Path, backend: str = "cpu") -> Path:
    """Simulate every time step and write the MS at `path` (in the run's scratch directory; staging publishes it).

    backend: "cpu" or "gpu" (see simulate.backend); a writer thread writes step n while step n + 1 is predicted.
    """
    obs = run_plan.observation
    settings = run_plan.settings
    description = MSDescription(
        telescope=run_plan.telescope, freq_hz=obs.freq_hz, channel_width_hz=obs.channel_width_hz,
        phase_centre_rad=(obs.ra_rad, obs.dec_rad), field_name=settings.obs_id,
        time_range_s=(float(obs.times_s[0] - obs.interval_s / 2), float(obs.times_s[-1] + obs.interval_s / 2)),
        history=history_lines(settings), application="srcnet-sim",
    )
    ant1, ant2 = obs.baselines
    sigma = obs.baseline_sigma()
    with MeasurementSetWriter(path, description) as writer:
        def write(step: TimeStep) -> None:
            writer.append(step.time_s, obs.interval_s, ant1, ant2, step.uvw_m, step.vis.astype(np.complex64, copy=False), sigma)

        write_behind(track(simulate(obs, backend=backend), len(obs.times_s), "simulate"), write)
    return path


def make_images(run_plan: Plan, ms_path: Path, scratch: Path) -> dict[str, Path]:
    """Image the MS as the seed did (uniform weighting, WSClean's clean parameters) into `scratch`.

    Returns {"dirty": path, "clean": path} of the FITS files made (with PNG quick-looks beside them).
    """
    from srcnet_sim.imaging import imager, msdata, products
    from srcnet_sim.imaging.preview import write_preview

    settings = run_plan.settings
    params = imager.ImagingParameters(npix=settings.imaging_npixel, cell_rad=run_plan.cell_rad(), allow_uv_cut=True)
    vis = msdata.MeasurementSetSource(ms_path)
    logger.info("image: %d x %d pixels of %.3f arcsec, uniform weighting", params.npix, params.npix,
                math.degrees(params.cell_rad) * 3600)
    images = imager.make_images(vis, params, SEED_CLEAN if "clean" in run_plan.made else None)
    if images.sampled_weight_fraction < 1.0:
        logger.warning("image: the cell leaves baselines longer than %.0f wavelengths out (%.1f %% of the weight), "
                       "as WSClean does; set IMAGING_CELLSIZE <= %.3g rad to keep them", 1 / (2 * params.cell_rad),
                       100 * (1 - images.sampled_weight_fraction), 1 / (2 * vis.longest_baseline_wavelengths))
    if images.clean is not None:
        logger.info("clean: %d iterations in %d major cycles, stopped at %.3g Jy/beam", images.clean.iterations,
                    images.clean.major_cycles, images.clean.threshold_jy)
    kinds = {"dirty": "dirty", "clean": "cleaned"}
    paths = {kinds[p]: scratch / run_plan.file_name(p) for p in ("dirty", "clean") if p in run_plan.made}
    written = products.write_products(images, products.describe(vis, params, images, settings.obs_id), params, paths,
                                      previews=False)
    out = {}
    for product, kind in kinds.items():
        if kind in written:
            out[product] = written[kind]
            if product in run_plan.products:
                write_preview(written[kind], written[kind].with_suffix(".png"), title=written[kind].name)
    return out


def identity(settings: Settings) -> obscore.Identity:
    """The identifiers of the products that come from the settings."""
    return obscore.Identity(obs_collection=settings.obs_collection, obs_id=settings.obs_id,
                            ivoid_authority=settings.ivoid_authority, ivoid_path=settings.ivoid_path,
                            namespace=settings.rucio_namespace)


def stage_products(run_plan: Plan, made: dict[str, Path], overwrite: bool) -> list[Path]:
    """Stage each chosen product, then its validated `.meta` sidecar; PNG quick-looks beside images."""
    settings = run_plan.settings
    ident = identity(settings)
    staged = []
    for product in (p for p in PRODUCTS if p in run_plan.products):
        source, name = made[product], run_plan.staged_name(product)

        def make_sidecar(path: Path, product: str = product, source: Path = source, name: str = name) -> dict:
            if product == "vis":
                meta = obscore.visibility_record(source, ident, name, path.stat().st_size)
            else:
                meta = obscore.image_record(path, ident, name)
            return sidecar.build(settings.rucio_namespace, name, settings.rucio_lifetime, meta, dataset_name=settings.obs_id)

        staged.append(staging.stage(source, run_plan.product_dir, name, make_sidecar, overwrite))
        logger.info("staged %s and %s", staged[-1], staging.meta_path(staged[-1]).name)
        preview = source.with_suffix(".png")
        if product != "vis" and preview.exists():
            staging.publish(run_plan.product_dir / preview.name, lambda target, p=preview: staging.copy_file(p, target))
    return staged


def run(settings: Settings, products: set[str], overwrite: bool = False, notification: bool = False) -> list[Path]:
    """Run the workflow for the chosen products; returns the paths staged in OUT_DIR/<RUCIO_NAMESPACE>.

    Everything is made in a temporary directory under TMPDIR, removed at the end (also after a
    failure or Ctrl-C); chosen products are then staged atomically with their sidecars.
    """
    logger.info("plan: telescope %s, sky %s, products %s", settings.telescope, settings.sky_model,
                ", ".join(p for p in PRODUCTS if p in products) or "none")
    backend = resolve_backend(settings.backend)
    run_plan = plan(settings, products)
    if backend.name == "gpu":
        steps, need = gpu_block_device_bytes(run_plan.observation)
        logger.info("predictor: GPU backend on %s; a block of %d steps needs about %s of device memory "
                    "(sources are chunked to what is free)", backend.device, steps, human(need))
    else:
        logger.info("predictor: CPU backend (%s)", backend.device)
    sizes = run_plan.estimate
    logger.info("plan: %d dishes, %d baselines, %d sources, %d time steps x %d channels; MS about %s",
                run_plan.telescope.n_dish, sizes.n_baselines, sizes.n_sources, sizes.n_times, sizes.n_channels,
                human(sizes.ms_expected_bytes))
    names = [run_plan.staged_name(p) for p in run_plan.products]
    names += [settings.file_prefix + NOTIFICATION_NAME] if notification else []
    staging.check_free_to_stage(run_plan.product_dir, names, overwrite)
    preflight(run_plan)
    run_plan.product_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="srcnet-sim-") as scratch_dir:
        scratch = Path(scratch_dir)
        made = {"vis": write_measurement_set(run_plan, scratch / run_plan.file_name("vis"), backend.name)}
        logger.info("wrote %s", made["vis"])
        if "dirty" in run_plan.made:
            made.update(make_images(run_plan, made["vis"], scratch))
        staged = stage_products(run_plan, made, overwrite)
        if notification:
            from srcnet_sim.products.notification import write_notification

            source = scratch / "notification-products"
            source.mkdir()
            for product in run_plan.products:
                made[product].rename(source / made[product].name)
            path = write_notification(source, run_plan.product_dir / f"{settings.file_prefix}{NOTIFICATION_NAME}", settings)
            logger.info("staged %s", path)
    return staged
