"""The stages of a run, each a peer the pipeline calls in turn: simulate and write the MS, image it, write the
truth catalogue, compare them (QA), and stage the chosen products with their sidecars.

Each stage takes the Plan and reads the parts it needs (observation, estimate, execution, imaging grid,
identity, names), never the settings; what it makes goes into the run's scratch (or resumable state)
directory and is returned as a path.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from srcnet_sim.errors import QAError
from srcnet_sim.fs.diskguard import DiskGuard
from srcnet_sim.products import obscore, sidecar, staging
from srcnet_sim.progress import Progress, logger
from srcnet_sim.qa.finder import import_bdsf
from srcnet_sim.run import resume
from srcnet_sim.run.blocks import BlockResult, make_blocks
from srcnet_sim.run.executors import run_blocks
from srcnet_sim.run.worker_writes import WorkerStore
from srcnet_sim.run.plan import CUBES, NOTIFICATION_NAME, PRODUCTS, VISIBILITIES, ZIPPED, Plan
from srcnet_sim.sizing import BlockShape, human, result_bytes
from srcnet_sim.vis.reader import MainTableScan
from srcnet_sim.vis import msv4
from srcnet_sim.vis.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.vis.writer_process import MeasurementSetWriterProcess

# The seed's WSClean cleaning: -niter 50000 -mgain 0.8 -auto-threshold 3, uniform weighting (CleanParameters fields).
SEED_CLEAN = {"gain": 0.1, "mgain": 0.8, "niter": 50_000, "auto_threshold": 3.0}


def write_visibilities(run_plan: Plan, state: resume.RunState, backend: str = "cpu") -> dict[str, Path]:
    """Simulate the blocks not yet written and write them into the visibility products the plan makes, in `state`
    (the run's resumable state directory; staging publishes them): the MSv2 ("vis") and/or the MSv4 processing set
    ("msv4", vis.msv4), both from the same blocks in one pass. Blocks are computed by the plan's executor with the
    `backend` predictor ("cpu" or "gpu", see simulate.predictors) and written in time order; each is journaled
    once it is on disk in every format. Reads the plan's observation, estimate, execution, imaging.field_name and
    history. Returns {product: path}."""
    obs = run_plan.observation.with_geometry()  # every time step's UVW, in order: the same for every block
    sizes = run_plan.estimate
    formats = [p for p in VISIBILITIES if p in run_plan.made]
    paths = {p: state.ms_path(run_plan.file_name(p)) for p in formats}
    description = MSDescription(
        telescope=run_plan.telescope, freq_hz=obs.freq_hz, channel_width_hz=obs.channel_width_hz,
        phase_centre_rad=(obs.ra_rad, obs.dec_rad), field_name=run_plan.imaging.field_name,
        time_range_s=(float(obs.times_s[0] - obs.interval_s / 2), float(obs.times_s[-1] + obs.interval_s / 2)),
        history=run_plan.history, application="srcnet-sim",
    )
    ant1, ant2 = obs.baselines
    n_bl, n_times, n_chan = len(ant1), sizes.n_times, sizes.n_channels
    sigma = obs.baseline_sigma()
    rows = (state.time_steps_done * n_bl, n_times * n_bl)  # the rows a resumed MSv2 holds at least, and at most
    writers = _reopen_writers(paths, rows, state) if state.resumed else {}
    expected = sum(run_plan.product_bytes(p) for p in formats)
    space = DiskGuard(state.directory, "TMPDIR", expected)
    if not writers:
        space.check(1.0)
        for product, path in paths.items():
            creating = path.with_name(path.name + ".creating")  # a run killed while creating leaves nothing
            shutil.rmtree(creating, ignore_errors=True)
            if product == "vis":
                MeasurementSetWriter(creating, description, tile_channels=sizes.block_channels,
                                     model_data=obs.model_data).close()
            else:
                msv4.create_store(creating, description, obs.times_s, obs.interval_s, ant1, ant2, sizes.block_times,
                                  sizes.block_channels, model=obs.model_data, partition=msv4.partition_name(path))
            os.rename(creating, path)
        writers = _reopen_writers(paths, (0, 0), None)
    shape = BlockShape(sizes.block_times, sizes.block_channels, sizes.simulate_peak_bytes)
    blocks = make_blocks(n_times, n_chan, shape, first_time=state.time_steps_done)
    options = replace(run_plan.execution, backend=backend)
    logger.info("simulate: %d blocks of %d time steps x %d channels (a worker needs about %s of MEMORY_LIMIT %s); "
                "executor %s, %d worker%s x %d threads; writing %s", len(blocks), shape.n_times, shape.n_channels,
                human(shape.worker_peak_bytes), human(sizes.memory_limit_bytes), options.kind, options.workers,
                "s" if options.workers > 1 else "", options.threads, " and ".join(FORMAT_NAMES[p] for p in formats))
    progress = Progress(n_times * n_chan, len(blocks), "simulate", done_units=state.time_steps_done * n_chan)

    def remaining_fraction() -> float:
        """The share of `expected` still to be taken on disk: the MSv2's (what is not yet on disk of it, measured on
        its own path), the MSv4's (its blocks still to come, counted, not walked: the store holds a few files per
        block)."""
        left = 0.0
        if "vis" in paths:
            left += max(0, run_plan.product_bytes("vis") - _allocated_bytes(paths["vis"]))
        if "msv4" in paths:
            left += run_plan.product_bytes("msv4") * units_left[0] / (n_times * n_chan)
        return left / expected

    def write(result: BlockResult) -> None:
        block = result.block
        space.check(remaining_fraction())  # the block's rows and tiles are added by this write
        if "vis" in writers:
            writers["vis"].put_rows(block.time_start * n_bl, result.time_s, obs.interval_s, ant1, ant2, result.uvw_m,
                                    result.vis, sigma, chan_start=block.chan_start, flag=result.flag, model=result.model)
        if "msv4" in writers and not result.stored:
            writers["msv4"].put_block(block.time_start, block.chan_start, obs.interval_s, result.uvw_m, result.vis,
                                      sigma, flag=result.flag, model=result.model)
        units_left[0] -= block.n_times * block.n_channels
        space.check(remaining_fraction())  # casacore aborts on a full volume
        if "vis" in writers:
            writers["vis"].flush()
        if result.rfi_score is not None:
            rfi_score[:] += result.rfi_score
        stored[0] += result.stored
        state.record(block.time_start, block.time_stop, block.chan_start, block.chan_stop)
        progress.advance(block.n_times * block.n_channels)

    rfi_score = np.zeros(4, dtype=np.int64)  # simulate.flagger's counts, summed over the blocks written now
    stored = [0]  # blocks the Dask workers wrote into the MSv4 themselves
    units_left = [sum(b.n_times * b.n_channels for b in blocks)]  # time steps x channels still to write
    store = (WorkerStore(str(paths["msv4"]), obs.interval_s, sigma, keep_results="vis" in writers)
             if "msv4" in writers and options.kind == "dask" else None)  # Dask workers write their own chunks
    started = time.perf_counter()
    try:
        run_blocks(obs, blocks, write, options, store)
    finally:
        if "vis" in writers:
            writers["vis"].close()
    seconds = time.perf_counter() - started
    if "msv4" in paths:  # every block is in: nobody writes the store now
        for leftover in msv4.remove_unfinished_writes(paths["msv4"]):
            logger.info("msv4: removed %s, a chunk write left unfinished by a killed run or Dask worker", leftover)
    samples = sum(b.n_times * b.n_channels for b in blocks) * n_bl * len(obs.sky)
    written = sum(result_bytes(b.n_times, b.n_channels, n_bl, obs.model_data, obs.rfi is not None) for b in blocks)
    logger.info("simulate: %d blocks in %.2f s (%.2f G source-visibilities/s, %.0f MB/s of visibilities written)",
                len(blocks), seconds, samples / max(seconds, 1e-9) / 1e9, written / max(seconds, 1e-9) / 1e6)
    if store is not None:
        logger.info("msv4: %d of %d blocks written by the Dask workers themselves%s", stored[0], len(blocks),
                    "" if stored[0] == len(blocks) else " (the others by this process: the workers could not see "
                    f"{paths['msv4']}, or a block did not fill whole chunks)")
    if obs.rfi is not None:
        from srcnet_sim.simulate.flagger import describe

        logger.info("rfi: %d emitters in band; %s%s", obs.rfi.emitters.n_emit, describe(rfi_score, obs.rfi_flag_sigma),
                    " (the blocks written by this run)" if state.resumed else "")
    return paths


FORMAT_NAMES = {"vis": "MSv2", "msv4": "MSv4"}


def _reopen_writers(paths: dict[str, Path], rows: tuple[int, int], state: resume.RunState | None) -> dict:
    """Writers of the visibility products at `paths` made before ({product: writer}); the MSv2 must hold
    rows[0]..rows[1] rows (its journaled blocks at least). With `state` (a resumed run), products the killed run
    left unreadable are logged and the state started over (an empty dict returned)."""
    writers: dict = {}
    try:
        for product, path in paths.items():
            if product == "vis":
                writers[product] = MeasurementSetWriterProcess(path)  # casacore holds the GIL: its own process
                if not rows[0] <= writers[product].n_rows <= rows[1]:
                    raise RuntimeError(f"{writers[product].n_rows} rows, not {rows[0]}..{rows[1]}")
            else:
                writers[product] = msv4.ProcessingSetWriter(path)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:  # what the killed run left cannot be opened
        if state is None:
            raise
        if "vis" in writers:
            writers["vis"].close()
        logger.warning("resume: %s cannot be opened (%s); starting it again", path, str(exc).splitlines()[0])
        state.start_over(*(p.name for p in paths.values()))
        return {}
    return writers


def _allocated_bytes(directory: Path) -> int:
    """Disk space taken by the files under `directory` (blocks allocated, not apparent sizes; links not followed)."""
    return sum(os.lstat(os.path.join(root, name)).st_blocks * 512
               for root, _, names in os.walk(directory) for name in names)


def make_images(run_plan: Plan, ms_path: Path, scratch: Path) -> tuple[dict[str, Path], MainTableScan]:
    """Image the MS as the seed did (uniform weighting, WSClean's clean parameters) into `scratch`.

    Returns {"dirty": path, "clean": path} of the FITS files made (with PNG quick-looks beside them; with CONTSUB=on
    and a cube also "continuum_model", the cleaned image's model in Jy/pixel), and the MS's main-table scan that
    imaging made (the MS's sidecar reuses it: one scan of the table per run).
    """
    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.imager import ImagingParameters
    from srcnet_sim.imaging.pipeline import image_measurement_set

    params = ImagingParameters(npix=run_plan.imaging.npix, cell_rad=run_plan.imaging.cell_rad, allow_uv_cut=True)
    kinds = {"dirty": "dirty", "clean": "cleaned"}
    paths = {kinds[p]: scratch / run_plan.file_name(p) for p in kinds if p in run_plan.made}
    if run_plan.imaging.contsub and set(CUBES) & set(run_plan.made):
        kinds["continuum_model"] = "model"
        paths["model"] = scratch / f"{run_plan.names.file_prefix}continuum-model.fits"
    clean = CleanParameters(**SEED_CLEAN) if "clean" in run_plan.made else None
    imaged = image_measurement_set(ms_path, params, clean, paths,
                                   run_plan.imaging.field_name, previews=[kinds[p] for p in kinds if p in run_plan.products],
                                   cell_setting="IMAGING_CELLSIZE")
    return {product: imaged.written[kind] for product, kind in kinds.items() if kind in imaged.written}, imaged.main_scan


def make_cubes(run_plan: Plan, ms_path: Path, scratch: Path, continuum_model: Path | None = None) -> dict[str, Path]:
    """The image cubes the plan makes ("cube" cleaned, "dirty_cube"), into `scratch`: the run's grid, uniform
    weighting and the seed's clean parameters for every plane, the planes of run_plan.imaging.cube_planes;
    continuum_model: the FITS model (Jy/pixel) subtracted from the visibilities first (CONTSUB=on)."""
    from astropy.io import fits

    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.cube import ContinuumModel, cube_description, image_cube, open_measurement_set
    from srcnet_sim.imaging.imager import ImagingParameters

    grid = run_plan.imaging
    params = ImagingParameters(npix=grid.npix, cell_rad=grid.cell_rad, allow_uv_cut=True)
    paths = {kind: scratch / run_plan.file_name(product) for product, kind in CUBES.items() if product in run_plan.made}
    clean = CleanParameters(**SEED_CLEAN) if "cube" in run_plan.made else None
    ms = open_measurement_set(ms_path)
    desc = cube_description(ms, grid.cell_rad, grid.field_name)
    continuum = None
    if continuum_model is not None:
        continuum = ContinuumModel(np.asarray(fits.getdata(continuum_model)[0, 0], dtype=np.float32), grid.cell_rad)
    written = image_cube(ms, params, clean, list(grid.cube_planes), paths, desc, continuum, scratch=scratch)
    return {product: written[kind] for product, kind in CUBES.items() if kind in written}


def write_truth_catalogue(run_plan: Plan, path: Path) -> Path:
    """The truth catalogue of the run (every source simulated, intrinsic and apparent) at `path`."""
    from srcnet_sim.products.truth import TruthContext, write_truth

    context = TruthContext(obs_id=run_plan.identity.obs_id, telescope_name=run_plan.telescope.name,
                           filter_radius_rad=run_plan.filter_radius_rad, settings=run_plan.settings_record)
    return write_truth(path, run_plan.observation, context)


def write_true_gains(run_plan: Plan, ms_path: Path, directory: Path) -> Path:
    """The CASA caltables (G, B, Df) of the gains the observation applied, at `directory` (products.caltables)."""
    from srcnet_sim.products.caltables import write_caltables

    obs = run_plan.observation
    return write_caltables(directory, ms_path, obs.gains, obs.times_s, obs.interval_s, obs.freq_hz)


def write_true_rfi(run_plan: Plan, path: Path) -> Path:
    """The RFI's emitters and mask (products.rfi_truth) at `path`."""
    from srcnet_sim.products.rfi_truth import write_rfi_truth

    return write_rfi_truth(path, run_plan.observation, run_plan.identity.obs_id)


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


def quality_report(run_plan: Plan, made: dict[str, Path], scratch: Path) -> QAError | None:
    """Compare the cleaned image with the truth (PyBDSF) into made["qa"], the QA directory in `scratch`, and, when
    the run made a cleaned cube of a sky with lines, the cube's line detections (qa.line_report, its own file
    names in the same directory); log a few lines. Returns the QAError (one line, logged) when either fails, else
    None."""
    from srcnet_sim.qa import line_report, report

    directory = scratch / run_plan.file_name("qa")
    directory.mkdir()
    prefix = run_plan.names.file_prefix
    reports = [(report.make_report, made["clean"], report.summary_lines)]
    if "cube" in made and run_plan.observation.sky.has_lines:
        reports.append((line_report.make_line_report, made["cube"], line_report.summary_lines))
    for make, image, summary_lines in reports:
        try:
            result = make(image, made["truth"], directory, prefix=prefix)
        except QAError as exc:
            (logger.error if "qa" in run_plan.products else logger.warning)("%s", exc)
            return exc
        for line in summary_lines(result.summary):
            logger.info("%s", line)
    made["qa"] = directory
    return None


def prepare_products(run_plan: Plan, made: dict[str, Path], private_dir: Path, products: frozenset[str],
                     ms_scan: MainTableScan | None = None, spend_ms_in: Path | None = None,
                     into: list[staging.Prepared] | None = None) -> list[staging.Prepared]:
    """Write each product of `products` (directories as tars) and its validated `.meta` into the run's
    private directory in the staging area, ready to publish. ms_scan: the visibilities' main-table scan when imaging
    made one, of the MSv2 or the MSv4 (the same samples; else each visibility sidecar scans its product).
    spend_ms_in: the run's resumable state directory when nothing reads the MS after staging: its tar is then made
    around its DATA file where the filesystem allows (staging.prepare_adopted), last. into: the list the prepared
    products are appended to as they are made (returned, in PRODUCTS order), which a caller's clean-up reads."""
    ident, names = run_plan.identity, run_plan.names
    prepared = [] if into is None else into
    spent = "vis" if spend_ms_in is not None and "vis" in products and made["vis"].is_dir() else None
    for product in sorted((p for p in PRODUCTS if p in products), key=lambda p: p == spent):  # the spent MS last
        source, name = made[product], run_plan.staged_name(product)

        def make_sidecar(path: Path, size: int, product: str = product, source: Path = source, name: str = name) -> dict:
            if product == "vis":
                meta = obscore.visibility_record(source, ident, name, size, ms_scan)
            elif product == "msv4":
                meta = obscore.msv4_record(path, ident, name, size, ms_scan)
            elif product == "truth":
                meta = obscore.truth_record(path, ident, name)
            elif product == "rfi":
                meta = obscore.rfi_truth_record(path, ident, name)
            elif product == "gains":
                meta = obscore.caltables_record(source, ident, name, size,
                                                2.0 * math.degrees(run_plan.filter_radius_rad))
            elif product == "qa":
                from srcnet_sim.qa.report import SUMMARY_NAME

                meta = obscore.qa_record(source / f"{names.file_prefix}{SUMMARY_NAME}", ident, name, size)
            else:
                meta = obscore.image_record(path, ident, name)
            return sidecar.build(ident.namespace, name, names.lifetime_s, meta, dataset_name=ident.obs_id)

        final = run_plan.product_dir / name
        if product == spent:
            staging.prepare_adopted(private_dir, final, source, spend_ms_in, make_sidecar, prepared)
            continue
        write = (staging.zip_store(source) if product in ZIPPED else staging.tar_directory(source) if source.is_dir()
                 else staging.copy_of(source))
        prepared.append(staging.prepare(private_dir, final, write, make_sidecar))
    order = {run_plan.product_dir / run_plan.staged_name(p): i for i, p in enumerate(PRODUCTS) if p in products}
    prepared.sort(key=lambda item: order[item.final])
    return prepared


def stage_products(run_plan: Plan, made: dict[str, Path], private_dir: Path, overwrite: bool,
                   notification: bool = False, products: frozenset[str] | None = None,
                   ms_scan: MainTableScan | None = None, state_dir: Path | None = None) -> list[Path]:
    """Stage each chosen product (or those of `products`), then its `.meta`, and the notification last;
    the caller holds the names' claims. state_dir: the run's resumable state, where the MS's tar may be made
    around its DATA file (prepare_products; not with the notification, whose plugins read the MS afterwards).

    Everything is written into `private_dir` first, so a failure (a full volume, a signal) before
    the renames leaves nothing new in the staging area.
    """
    prepared: list[staging.Prepared] = []
    try:
        return _publish(run_plan, made, private_dir, overwrite, notification, products, ms_scan, state_dir, prepared)
    except BaseException:
        staging.take_back(prepared)  # a tar made from the MS and not published goes back into it: resumable
        raise


def _publish(run_plan: Plan, made: dict[str, Path], private_dir: Path, overwrite: bool, notification: bool,
             products: frozenset[str] | None, ms_scan: MainTableScan | None, state_dir: Path | None,
             prepared: list[staging.Prepared]) -> list[Path]:
    """stage_products' work, the prepared products listed in `prepared` as they are made."""
    prepare_products(run_plan, made, private_dir, run_plan.products if products is None else products, ms_scan,
                     None if notification else state_dir, prepared)
    if notification:
        from srcnet_sim.products.notification import notification_text

        source = made[next(p for p in (*VISIBILITIES, "dirty", "clean") if p in made)].parent / "notification-products"
        source.mkdir()
        for product in run_plan.products & {"vis", "dirty", "clean"}:  # the products its plugins read
            made[product].rename(source / made[product].name)
        final = run_plan.product_dir / f"{run_plan.names.file_prefix}{NOTIFICATION_NAME}"
        document = notification_text(source, run_plan.identity)
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
