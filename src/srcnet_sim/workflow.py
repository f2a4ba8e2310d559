"""Orchestration of one run: settings -> telescope, sky, observation -> MeasurementSet. No numerics here."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnet_sim import __version__, resume, validation
from srcnet_sim.blocks import BlockResult, BlockShape, make_blocks, result_bytes
from srcnet_sim.executors import executor_options, run_blocks
from srcnet_sim.config import Settings
from srcnet_sim.errors import QAError, UserInputError, is_disk_full
from srcnet_sim import scratch, stopping
from srcnet_sim.diskguard import DiskGuard
from srcnet_sim.products import claims, naming, obscore, sidecar, staging
from srcnet_sim.ms.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.progress import Progress, logger
from srcnet_sim.qa.finder import import_bdsf
from srcnet_sim.resources import Estimate, default_memory_limit, estimate, human
from srcnet_sim.simulate import geometry, measures_data
from srcnet_sim.simulate.beams import power_beam_fwhm_rad
from srcnet_sim.simulate.backend import resolve_backend
from srcnet_sim.simulate.observation import Observation, gpu_block_device_bytes
from srcnet_sim.sky.catalogues import load_sky_model
from srcnet_sim.telescope import Telescope, load_telescope

PRODUCT_NAMES = {"vis": "measurements.ms", "dirty": "dirty.fits", "clean": "cleaned.fits", "truth": "truth.fits", "qa": "qa"}
PRODUCTS = tuple(PRODUCT_NAMES)
MS_ARCHIVE_SUFFIX = ".tar"
ARCHIVED = ("vis", "qa")  # directories, staged as tar files
QA_PRODUCT_BYTES = 4 * 2**20  # JSON, four PNGs and PyBDSF's source list
NOTIFICATION_NAME = "notification.json"
# The seed's WSClean cleaning: -niter 50000 -mgain 0.8 -auto-threshold 3, uniform weighting (CleanParameters fields).
SEED_CLEAN = {"gain": 0.1, "mgain": 0.8, "niter": 50_000, "auto_threshold": 3.0}
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
        """The name in the staging area and in Rucio: a MeasurementSet or QA report (directories) is staged as a tar."""
        return staged_file_name(self.settings.file_prefix, product)

    @property
    def made(self) -> tuple[str, ...]:
        """Products made: the chosen ones and what they need (images need the MS, clean the dirty image)."""
        needed = set(self.products)
        if "qa" in needed:
            needed |= {"clean", "truth"}
        if needed & {"dirty", "clean"}:
            needed.add("vis")
        if "clean" in needed:
            needed |= {"dirty", "truth"}  # a cleaned image is always compared with the truth (QA in the log)
        return tuple(p for p in PRODUCTS if p in needed)


    def product_bytes(self, product: str) -> int:
        e = self.estimate
        if product == "truth":
            return truth_file_bytes(e.n_sources, e.n_channels)
        if product == "qa":
            return QA_PRODUCT_BYTES
        return e.ms_expected_bytes if product == "vis" else e.image_file_bytes

    def cell_rad(self) -> float:
        """IMAGING_CELLSIZE, or the seed's FOV / npixel."""
        s = self.settings
        return s.imaging_cellsize if s.imaging_cellsize is not None else field_of_view_rad(s) / s.imaging_npixel


def staged_file_name(prefix: str, product: str) -> str:
    """<FILE_PREFIX><product file name>, with .tar for the products that are directories."""
    return prefix + PRODUCT_NAMES[product] + (MS_ARCHIVE_SUFFIX if product in ARCHIVED else "")


def truth_file_bytes(n_sources: int, n_channels: int) -> int:
    """Size of the truth catalogue: a 16-byte name, 18 columns of 8 bytes, 2 per-channel columns, headers."""
    return n_sources * (16 + 18 * 8 + 2 * 8 * n_channels) + 20 * 2880


def field_of_view_rad(settings: Settings) -> float:
    """The seed's field of view: 1.25 lambda_mid / 15 m, lambda_mid at the middle of the band."""
    mid_hz = 0.5 * (settings.start_freq_hz + settings.end_freq_hz)
    return float(power_beam_fwhm_rad(mid_hz, SEED_DISH_DIAMETER_M))


def _check_names(settings: Settings) -> None:
    """Rucio names, and every path the run creates within NAME_MAX and PATH_MAX (hidden temporary names included)."""
    naming.check_scope(settings.rucio_namespace)
    naming.check_name(settings.obs_id, "OBS_ID")  # the Rucio dataset of the run's products
    staged = [staged_file_name(settings.file_prefix, product) for product in PRODUCTS]
    for name in staged:
        naming.check_name(name)
    naming.check_path_lengths(Path(settings.out_dir) / settings.rucio_namespace,
                              staged + [n + naming.META_SUFFIX for n in staged] + [settings.file_prefix + NOTIFICATION_NAME],
                              "OUT_DIR")
    naming.check_path_lengths(Path(tempfile.gettempdir()), [settings.file_prefix + PRODUCT_NAMES[p] for p in PRODUCTS],
                              "TMPDIR", inside_bytes=naming.SCRATCH_PATH_RESERVE)


def plan(settings: Settings, products: set[str] | frozenset[str] = frozenset({"vis"})) -> Plan:
    """Resolve telescope, times, sky and sizes; raise UserInputError on anything a user can fix."""
    if not products:
        raise UserInputError("--vis", "choose at least one product to ingest: --vis, --dirty, --clean, --truth or --qa")
    tables = measures_data.current()  # before anything opens a casacore table
    _check_names(settings)
    validation.check_sidecar_values(settings, identity(settings), {p: staged_file_name(settings.file_prefix, p) for p in PRODUCTS})
    telescope = load_telescope(settings.telescope)
    ra0, dec0 = settings.phase_centre_rad
    times_s = geometry.sample_times_s(settings.start_datetime, settings.length_s, settings.num_time_stamps)
    notice = measures_data.coverage_notice(settings.end_datetime, tables)
    if notice:
        logger.warning("%s", notice)
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
    sky = load_sky_model(settings.sky_model, settings.sky_model_path, ra0, dec0, radius, settings.synthetic_sources,
                         settings.seed, settings.freq_hz, cache_dir=settings.sky_model_cache,
                         mightee_url=settings.mightee_l1_url)
    observation = Observation(
        telescope=telescope, sky=sky, ra_rad=ra0, dec_rad=dec0, times_s=times_s, interval_s=settings.interval_s,
        freq_hz=settings.freq_hz, channel_width_hz=settings.freq_inc_hz, beam=settings.beam,
        autocorrelations=settings.correlations == "cross+auto", smearing=settings.smearing,
        noise=settings.noise == "on", seed=settings.seed,
        dtype=np.complex128 if settings.precision == "double" else np.complex64,
    )
    workers = executor_options(settings.executor, settings.dask_scheduler_address, settings.dask_workers,
                               settings.worker_threads, None).workers
    sizes = estimate(settings.n_channels, settings.num_time_stamps, telescope.n_dish, observation.autocorrelations,
                     len(sky), settings.imaging_npixel, settings.precision == "double", worker_memory_limit(settings),
                     workers)
    run_plan = Plan(settings, telescope, observation, sizes, Path(settings.out_dir) / settings.rucio_namespace,
                    frozenset(products))
    if "dirty" in run_plan.made:
        validation.check_image_grid(settings, telescope, times_s, run_plan.cell_rad())
    return run_plan


def worker_memory_limit(settings: Settings) -> int:
    """MEMORY_LIMIT, or its default: the available memory with headroom, shared by a LocalCluster's workers."""
    if settings.memory_limit is not None:
        return settings.memory_limit
    options = executor_options(settings.executor, settings.dask_scheduler_address, settings.dask_workers,
                               settings.worker_threads, None)
    local_workers = options.workers if options.kind == "dask" and not options.scheduler_address else 1
    return default_memory_limit(local_workers)


def preflight_problems(run_plan: Plan) -> dict[str, UserInputError | None]:
    """Why this machine cannot run the plan, per resource ("memory", "OUT_DIR", "TMPDIR"), or None where it can:
    memory (container limit included), OUT_DIR and the temporary directory (space, their sum on one filesystem,
    writable)."""
    scratch = Path(tempfile.gettempdir())
    volumes = validation.volume_problems(
        run_plan.product_dir, sum(run_plan.product_bytes(p) for p in run_plan.products),
        ", ".join(run_plan.staged_name(p) for p in PRODUCTS if p in run_plan.products),
        scratch, sum(run_plan.product_bytes(p) for p in run_plan.made), ", ".join(run_plan.file_name(p) for p in run_plan.made))
    return {"memory": validation.memory_problem(run_plan.settings, run_plan.estimate, images="dirty" in run_plan.made),
            **volumes}


def preflight(run_plan: Plan) -> None:
    """Refuse to start, with the numbers, when this machine cannot run the plan (see preflight_problems)."""
    for problem in preflight_problems(run_plan).values():
        if problem is not None:
            raise problem


def history_lines(settings: Settings) -> tuple[str, ...]:
    """HISTORY messages: the software version, every setting (seed included) but those that only choose how the
    blocks are computed (the MS is the same whatever they are), as JSON, and the measures tables used."""
    return (f"srcnet-sim {__version__}", "settings " + json.dumps(resume.defining_settings(settings), sort_keys=True),
            *measures_data.history_lines(measures_data.current()))


def write_measurement_set(run_plan: Plan, state: resume.RunState, backend: str = "cpu") -> Path:
    """Simulate the blocks not yet written and write them into the MS in `state` (the run's resumable state
    directory; staging publishes it): blocks computed by the chosen executor with the `backend` predictor ("cpu"
    or "gpu", see simulate.backend), written in time order by one writer, each journaled once it is on disk."""
    obs = run_plan.observation.with_geometry()  # every time step's UVW, in order: the same for every block
    settings = run_plan.settings
    sizes = run_plan.estimate
    path = state.ms_path(run_plan.file_name("vis"))
    description = MSDescription(
        telescope=run_plan.telescope, freq_hz=obs.freq_hz, channel_width_hz=obs.channel_width_hz,
        phase_centre_rad=(obs.ra_rad, obs.dec_rad), field_name=settings.obs_id,
        time_range_s=(float(obs.times_s[0] - obs.interval_s / 2), float(obs.times_s[-1] + obs.interval_s / 2)),
        history=history_lines(settings), application="srcnet-sim",
    )
    ant1, ant2 = obs.baselines
    n_bl, n_times, n_chan = len(ant1), sizes.n_times, sizes.n_channels
    sigma = obs.baseline_sigma()
    writer = None
    if state.resumed:
        try:
            writer = MeasurementSetWriter.reopen(path)
            if writer.n_rows != n_times * n_bl:
                raise RuntimeError(f"{writer.n_rows} rows instead of {n_times * n_bl}")
        except RuntimeError as exc:  # casacore could not read what the killed run left
            logger.warning("resume: %s cannot be opened (%s); starting it again", path, str(exc).splitlines()[0])
            state.start_over(path.name)
    space = DiskGuard(path.parent, "TMPDIR", sizes.ms_expected_bytes)
    if writer is None:
        space.check(1.0)
        creating = path.with_name(path.name + ".creating")  # a run killed while creating leaves no MS
        shutil.rmtree(creating, ignore_errors=True)
        MeasurementSetWriter(creating, description, tile_channels=sizes.block_channels, n_rows=n_times * n_bl).close()
        os.rename(creating, path)
        writer = MeasurementSetWriter.reopen(path)
    shape = BlockShape(sizes.block_times, sizes.block_channels, sizes.simulate_peak_bytes)
    blocks = make_blocks(n_times, n_chan, shape, first_time=state.time_steps_done)
    options = executor_options(settings.executor, settings.dask_scheduler_address, settings.dask_workers,
                               settings.worker_threads, sizes.memory_limit_bytes, backend)
    logger.info("simulate: %d blocks of %d time steps x %d channels (a worker needs about %s of MEMORY_LIMIT %s); "
                "executor %s, %d worker%s x %d threads", len(blocks), shape.n_times, shape.n_channels,
                human(shape.worker_peak_bytes), human(sizes.memory_limit_bytes), options.kind, options.workers,
                "s" if options.workers > 1 else "", options.threads)
    progress = Progress(n_times * n_chan, len(blocks), "simulate", done_units=state.time_steps_done * n_chan)

    def write(result: BlockResult) -> None:
        block = result.block
        space.check(1.0 - _allocated_bytes(path) / sizes.ms_expected_bytes)  # the rows are allocated, not all on disk
        writer.put_rows(block.time_start * n_bl, result.time_s, obs.interval_s, ant1, ant2, result.uvw_m, result.vis, sigma,
                        chan_start=block.chan_start)
        space.check(1.0 - _allocated_bytes(path) / sizes.ms_expected_bytes)  # casacore aborts on a full volume
        writer.flush()
        state.record(block.time_start, block.time_stop, block.chan_start, block.chan_stop)
        progress.advance(block.n_times * block.n_channels)

    started = time.perf_counter()
    try:
        run_blocks(obs, blocks, write, options)
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    samples = sum(b.n_times * b.n_channels for b in blocks) * n_bl * len(obs.sky)
    written = sum(result_bytes(b.n_times, b.n_channels, n_bl) for b in blocks)
    logger.info("simulate: %d blocks in %.2f s (%.2f G source-visibilities/s, %.0f MB/s of visibilities written)",
                len(blocks), seconds, samples / max(seconds, 1e-9) / 1e9, written / max(seconds, 1e-9) / 1e6)
    return path


def _allocated_bytes(directory: Path) -> int:
    """Disk space taken by the files under `directory` (blocks allocated, not apparent sizes; links not followed)."""
    return sum(os.lstat(os.path.join(root, name)).st_blocks * 512
               for root, _, names in os.walk(directory) for name in names)


def make_images(run_plan: Plan, ms_path: Path, scratch: Path) -> dict[str, Path]:
    """Image the MS as the seed did (uniform weighting, WSClean's clean parameters) into `scratch`.

    Returns {"dirty": path, "clean": path} of the FITS files made (with PNG quick-looks beside them).
    """
    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.imager import ImagingParameters
    from srcnet_sim.imaging.pipeline import image_measurement_set

    params = ImagingParameters(npix=run_plan.settings.imaging_npixel, cell_rad=run_plan.cell_rad(), allow_uv_cut=True)
    kinds = {"dirty": "dirty", "clean": "cleaned"}
    paths = {kinds[p]: scratch / run_plan.file_name(p) for p in kinds if p in run_plan.made}
    clean = CleanParameters(**SEED_CLEAN) if "clean" in run_plan.made else None
    written = image_measurement_set(ms_path, params, clean, paths,
                                    run_plan.settings.obs_id, previews=[kinds[p] for p in kinds if p in run_plan.products],
                                    cell_setting="IMAGING_CELLSIZE")
    return {product: written[kind] for product, kind in kinds.items() if kind in written}


def write_truth_catalogue(run_plan: Plan, path: Path) -> Path:
    """The truth catalogue of the run (every source simulated, intrinsic and apparent) at `path`."""
    from srcnet_sim.products.truth import TruthContext, write_truth

    settings = run_plan.settings
    context = TruthContext(obs_id=settings.obs_id, telescope_name=run_plan.telescope.name,
                           filter_radius_rad=FILTER_RADIUS_FWHM * field_of_view_rad(settings), settings=settings.model_dump())
    return write_truth(path, run_plan.observation, context)


def qa_unavailable(run_plan: Plan) -> QAError | None:
    """The QAError saying PyBDSF cannot be imported, logged at the start rather than after the simulation; None when it can."""
    if "clean" not in run_plan.made:
        return None
    try:
        import_bdsf()
    except QAError as exc:
        if "qa" in run_plan.products:
            logger.error("%s; the other products will be made", exc)
        else:
            logger.warning("qa: skipped, PyBDSF is not installed (pip install bdsf)")
        return exc
    return None


def quality_report(run_plan: Plan, cleaned: Path, truth: Path, scratch: Path) -> Path:
    """Compare the cleaned image with the truth (PyBDSF); log a few lines; return the QA directory.

    Raises QAError (one line) when PyBDSF is missing or fails.
    """
    from srcnet_sim.qa.report import make_report, summary_lines

    directory = scratch / run_plan.file_name("qa")
    directory.mkdir()
    report = make_report(cleaned, truth, directory, prefix=run_plan.settings.file_prefix)
    for line in summary_lines(report.summary):
        logger.info("%s", line)
    return directory


def identity(settings: Settings) -> obscore.Identity:
    """The identifiers of the products that come from the settings."""
    return obscore.Identity(obs_collection=settings.obs_collection, obs_id=settings.obs_id,
                            ivoid_authority=settings.ivoid_authority, ivoid_path=settings.ivoid_path,
                            namespace=settings.rucio_namespace)


def prepare_products(run_plan: Plan, made: dict[str, Path], private_dir: Path, products: frozenset[str]) -> list[staging.Prepared]:
    """Write each product of `products` (directories as tars) and its validated `.meta` into the run's
    private directory in the staging area, ready to publish."""
    settings = run_plan.settings
    ident = identity(settings)
    prepared = []
    for product in (p for p in PRODUCTS if p in products):
        source, name = made[product], run_plan.staged_name(product)

        def make_sidecar(path: Path, product: str = product, source: Path = source, name: str = name) -> dict:
            if product == "vis":
                meta = obscore.visibility_record(source, ident, name, path.stat().st_size)
            elif product == "truth":
                meta = obscore.truth_record(path, ident, name)
            elif product == "qa":
                from srcnet_sim.qa.report import SUMMARY_NAME

                meta = obscore.qa_record(source / f"{settings.file_prefix}{SUMMARY_NAME}", ident, name, path.stat().st_size)
            else:
                meta = obscore.image_record(path, ident, name)
            return sidecar.build(settings.rucio_namespace, name, settings.rucio_lifetime, meta, dataset_name=settings.obs_id)

        write = staging.tar_directory(source) if source.is_dir() else staging.copy_of(source)
        prepared.append(staging.prepare(private_dir, run_plan.product_dir / name, write, make_sidecar))
    return prepared


def stage_products(run_plan: Plan, made: dict[str, Path], private_dir: Path, overwrite: bool,
                   notification: bool = False, products: frozenset[str] | None = None) -> list[Path]:
    """Stage each chosen product (or those of `products`), then its `.meta`, and the notification last;
    the caller holds the names' claims.

    Everything is written into `private_dir` first, so a failure (a full volume, a signal) before
    the renames leaves nothing new in the staging area.
    """
    prepared = prepare_products(run_plan, made, private_dir, run_plan.products if products is None else products)
    if notification:
        from srcnet_sim.products.notification import notification_text

        source = made["vis"].parent / "notification-products"  # in the scratch directory
        source.mkdir()
        for product in run_plan.products & {"vis", "dirty", "clean"}:  # the products its plugins read
            made[product].rename(source / made[product].name)
        final = run_plan.product_dir / f"{run_plan.settings.file_prefix}{NOTIFICATION_NAME}"
        document = notification_text(source, run_plan.settings)
        prepared.append(staging.prepare(private_dir, final, staging.text(document), None))
    staged = []
    for item in prepared:
        staged.append(staging.publish(item, overwrite))
        logger.info("staged %s%s", item.final, f" and {staging.meta_path(item.final).name}" if item.meta else "")
    return staged


def write_previews(made: dict[str, Path], products: frozenset[str], preview_dir: Path) -> None:
    """Copy the PNG quick-looks of the chosen images into `preview_dir` (outside the staging area: the
    ingestor takes only products with a `.meta`, and a preview is no ObsCore product)."""
    for product in ("dirty", "clean"):
        preview = made[product].with_suffix(".png") if product in made and product in products else None
        if preview is not None and preview.exists():
            fd, temporary = tempfile.mkstemp(prefix=f".{preview.name}.", dir=preview_dir)
            with os.fdopen(fd, "wb") as handle, open(preview, "rb") as data:
                shutil.copyfileobj(data, handle)
            os.replace(temporary, preview_dir / preview.name)  # replaces a link itself, never its target
            logger.info("wrote %s", preview_dir / preview.name)


def run(settings: Settings, products: set[str], overwrite: bool = False, notification: bool = False,
        preview_dir: Path | None = None, restart: bool = False) -> list[Path]:
    """Run the workflow for the chosen products; returns the paths staged in OUT_DIR/<RUCIO_NAMESPACE>.

    Before any work: the final names are claimed (a live run holding one stops this run), scratch
    and partial directories of killed runs are removed, and the volumes are checked. Everything is
    made in a private scratch directory under TMPDIR, removed at the end (also after a failure, a
    full disk, SIGTERM or Ctrl-C); chosen products are then staged safely with their sidecars.

    The MS is written into the run's resumable state directory (resume.py): kept when the run is
    killed, stopped or fails, adopted by the next run with the same settings (which skips the time
    steps written), refused for other settings unless `restart`, removed once the products are staged.
    """
    scratch_parent = Path(tempfile.gettempdir())
    measures_data.current()  # before anything opens a casacore table
    settings = resume.adopt_obs_id(settings, scratch_parent, Path(settings.out_dir) / settings.rucio_namespace)
    logger.info("plan: telescope %s, sky %s, products %s", settings.telescope, settings.sky_model,
                ", ".join(p for p in PRODUCTS if p in products) or "none")
    run_plan = plan(settings, products)
    sizes = run_plan.estimate
    backend = resolve_backend(settings.backend, float(sizes.n_sources) * sizes.n_baselines * sizes.n_channels * sizes.n_times)
    if backend.name == "gpu":
        steps, need = gpu_block_device_bytes(run_plan.observation)
        logger.info("predictor: GPU backend on %s; a block of %d steps needs about %s of device memory "
                    "(sources are chunked to what is free)", backend.device, steps, human(need))
    else:
        logger.info("predictor: CPU backend (%s)", backend.device)
    logger.info("plan: %d dishes, %d baselines, %d sources, %d time steps x %d channels; MS about %s",
                run_plan.telescope.n_dish, sizes.n_baselines, sizes.n_sources, sizes.n_times, sizes.n_channels,
                human(sizes.ms_expected_bytes))
    with_sidecar = {run_plan.staged_name(p) for p in run_plan.products}
    names = sorted(with_sidecar) + ([settings.file_prefix + NOTIFICATION_NAME] if notification else [])
    if preview_dir is not None:
        check_preview_dir(preview_dir, Path(settings.out_dir))
    product_dir = run_plan.product_dir
    created = not os.path.lexists(product_dir)
    staging_directory(product_dir)
    try:
        scratch.sweep(scratch_parent, scratch.SCRATCH_PREFIX)
        resume.sweep_abandoned(scratch_parent)
        scratch.sweep(product_dir, scratch.PARTIAL_PREFIX)
        claims.sweep(product_dir)
        with claims.claimed(product_dir, names):
            staging.check_free_to_stage(product_dir, names, with_sidecar, overwrite)
            preflight(run_plan)
            qa_error = qa_unavailable(run_plan)
            resumable = (resume.run_state(scratch_parent, product_dir, settings, run_plan.file_name("vis"), sizes.n_times,
                                          sizes.n_channels, restart) if "vis" in run_plan.made else contextlib.nullcontext())
            with resumable as state, \
                    scratch.live_directory(scratch_parent, scratch.SCRATCH_PREFIX) as scratch_dir, \
                    scratch.live_directory(product_dir, scratch.PARTIAL_PREFIX) as private_dir, \
                    _kept_on_stop(state):
                made = {}
                if "vis" in run_plan.made:
                    made["vis"] = write_measurement_set(run_plan, state, backend.name)
                    logger.info("wrote %s", made["vis"])
                if "dirty" in run_plan.made:
                    made.update(make_images(run_plan, made["vis"], scratch_dir))
                if "truth" in run_plan.made:
                    made["truth"] = write_truth_catalogue(run_plan, scratch_dir / run_plan.file_name("truth"))
                if "clean" in made and qa_error is None:
                    try:
                        made["qa"] = quality_report(run_plan, made["clean"], made["truth"], scratch_dir)
                    except QAError as exc:
                        qa_error = exc
                        (logger.error if "qa" in run_plan.products else logger.warning)("%s", exc)
                products_made = run_plan.products - ({"qa"} if qa_error else set())
                staged = stage_products(run_plan, made, private_dir, overwrite, notification, products_made)
                stopping.work_complete()  # staged: a signal from here (an eviction) no longer fails the run
                if preview_dir is not None:
                    write_previews(made, run_plan.products, preview_dir)
                if state is not None:
                    state.remove()  # the products are staged: nothing to resume
    finally:
        if created:
            with contextlib.suppress(OSError):
                product_dir.rmdir()  # when empty: a run stopped before staging anything leaves no trace
    if qa_error is not None and "qa" in run_plan.products:
        raise qa_error  # after the other products are staged: the CLI prints it as one line
    return staged


@contextlib.contextmanager
def _kept_on_stop(state: resume.RunState | None):
    """When the run ends early, log that its resumable state is kept and how to use it; on a full volume remove it
    (the space is needed more than a partial MS)."""
    try:
        yield
    except BaseException as exc:
        if state is not None and state.lock_fd >= 0 and is_disk_full(exc):
            state.remove()
        elif state is not None and state.lock_fd >= 0:
            logger.warning("kept %s (the MS written so far): run again with the same settings to continue, "
                           "or with --restart to start over", state.directory)
        raise


def staging_directory(product_dir: Path) -> Path:
    """OUT_DIR/<RUCIO_NAMESPACE>, made if missing; refused when that name is a link (planted in the shared area).

    A missing OUT_DIR is made too: only the default (./srcnet-products) can be missing here, since a
    set OUT_DIR must exist (config.load_settings)."""
    product_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        product_dir.mkdir()
    except FileExistsError:
        if product_dir.is_symlink() or not product_dir.is_dir():
            raise UserInputError("RUCIO_NAMESPACE", f"{product_dir} is a link or not a directory; the staging area of a "
                                 "namespace must be a real directory") from None
    return product_dir


def check_preview_dir(preview_dir: Path, out_dir: Path) -> None:
    """--preview-dir must be an existing directory outside OUT_DIR (the ingestor's area)."""
    if not preview_dir.is_dir():
        raise UserInputError("--preview-dir", f"{preview_dir} is not a directory")
    if preview_dir.resolve().is_relative_to(out_dir.resolve()):
        raise UserInputError("--preview-dir", f"{preview_dir} is inside OUT_DIR ({out_dir}), the ingestor's area, where "
                             "files without a .meta stay forever; choose a directory outside it")
