"""The pipeline of one run: plan, claim the names, then the stages in turn, then stage the products safely.

run() is the orchestration and nothing else: the checks are in plan() and run.preflight, the work in
run.stages, the file-system safety (claims, scratch, resumable state, signals) in fs and run.resume.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from srcnet_sim.config import Settings
from srcnet_sim.errors import UserInputError, is_disk_full
from srcnet_sim.fs import claims, scratch, stopping
from srcnet_sim.products import staging
from srcnet_sim.progress import logger
from srcnet_sim.run import resume
from srcnet_sim.run.plan import CUBES, NOTIFICATION_NAME, PRODUCTS, VISIBILITIES, Plan, plan
from srcnet_sim.run.preflight import preflight
from srcnet_sim.run.stages import (make_cubes, make_images, qa_unavailable, quality_report, stage_products, write_visibilities,
                                   write_previews, write_true_gains, write_true_rfi, write_truth_catalogue)
from srcnet_sim.simulate import measures_data
from srcnet_sim.simulate.observation import gpu_block_device_bytes
from srcnet_sim.simulate.predictors import Backend, resolve_backend
from srcnet_sim.sizing import human


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
    backend = choose_backend(run_plan, settings.backend)
    with_sidecar = {run_plan.staged_name(p) for p in run_plan.products}
    names = sorted(with_sidecar) + ([settings.file_prefix + NOTIFICATION_NAME] if notification else [])
    if preview_dir is not None:
        check_preview_dir(preview_dir, Path(settings.out_dir))
    product_dir = run_plan.product_dir
    created = not os.path.lexists(product_dir)
    staging_directory(product_dir)
    try:
        sweep_killed_runs(scratch_parent, product_dir)
        with claims.claimed(product_dir, names):
            staging.check_free_to_stage(product_dir, names, with_sidecar, overwrite)
            preflight(run_plan, ms_spent=not notification)
            qa_error = qa_unavailable(run_plan)
            visibilities = [p for p in VISIBILITIES if p in run_plan.made]
            resumable = (resume.run_state(scratch_parent, product_dir, settings.file_prefix,
                                          resume.defining_settings(settings), run_plan.file_name(visibilities[0]),
                                          sizes.n_times, sizes.n_channels, restart)
                         if visibilities else contextlib.nullcontext())
            with resumable as state, \
                    scratch.live_directory(scratch_parent, scratch.SCRATCH_PREFIX) as scratch_dir, \
                    scratch.live_directory(product_dir, scratch.PARTIAL_PREFIX) as private_dir, \
                    _kept_on_stop(state):
                made, ms_scan = {}, None
                if visibilities:
                    made.update(write_visibilities(run_plan, state, backend.name))
                    logger.info("wrote %s", " and ".join(str(made[p]) for p in visibilities))
                measurement_set = made.get("vis", made.get("msv4"))  # what the images are made from
                if "gains" in run_plan.made:
                    made["gains"] = write_true_gains(run_plan, made["vis"], scratch_dir / run_plan.file_name("gains"))
                if "dirty" in run_plan.made:
                    images, ms_scan = make_images(run_plan, measurement_set, scratch_dir)
                    made.update(images)
                if set(CUBES) & set(run_plan.made):
                    made.update(make_cubes(run_plan, measurement_set, scratch_dir, made.pop("continuum_model", None)))
                if "truth" in run_plan.made:
                    made["truth"] = write_truth_catalogue(run_plan, scratch_dir / run_plan.file_name("truth"))
                if "rfi" in run_plan.made:
                    made["rfi"] = write_true_rfi(run_plan, scratch_dir / run_plan.file_name("rfi"))
                if "clean" in made and qa_error is None:
                    qa_error = quality_report(run_plan, made, scratch_dir)
                products_made = run_plan.products - ({"qa"} if qa_error else set())
                staged = stage_products(run_plan, made, private_dir, overwrite, notification, products_made, ms_scan,
                                        state.directory if state is not None else None)
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


def choose_backend(run_plan: Plan, requested: str) -> Backend:
    """The predictor for BACKEND=`requested` and this run's size (simulate.predictors.resolve_backend), logged
    with the plan's sizes."""
    sizes = run_plan.estimate
    backend = resolve_backend(requested, float(sizes.n_sources) * sizes.n_baselines * sizes.n_channels * sizes.n_times,
                              polarised_sky_with_turning_beams=(run_plan.observation.rotating_beams
                                                                and run_plan.observation.sky.is_polarised))
    if backend.name == "gpu":
        steps, need = gpu_block_device_bytes(run_plan.observation)
        logger.info("predictor: GPU backend on %s; a block of %d steps needs about %s of device memory "
                    "(sources are chunked to what is free)", backend.device, steps, human(need))
    else:
        logger.info("predictor: CPU backend (%s)", backend.device)
    logger.info("plan: %d dishes, %d baselines, %d sources, %d time steps x %d channels; MS about %s",
                run_plan.telescope.n_dish, sizes.n_baselines, sizes.n_sources, sizes.n_times, sizes.n_channels,
                human(sizes.ms_expected_bytes))
    return backend


def sweep_killed_runs(scratch_parent: Path, product_dir: Path) -> None:
    """Remove what killed runs left: scratch directories, abandoned resumable states, partial staging directories
    and stale claims (each only when no live process holds it)."""
    scratch.sweep(scratch_parent, scratch.SCRATCH_PREFIX)
    resume.sweep_abandoned(scratch_parent)
    scratch.sweep(product_dir, scratch.PARTIAL_PREFIX)
    claims.sweep(product_dir)


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
