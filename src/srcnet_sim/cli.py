"""Command line: `srcnet-sim run`, `srcnet-sim estimate`.

Every setting is an option named after its environment variable (START_FREQ_HZ -> --start-freq-hz).
Precedence: command line > environment > TOML file (--config or SRCNET_SIM_CONFIG) > default.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srcnet_sim.errors import DiskFullError, QAError, ServiceError, UserInputError, is_disk_full
from srcnet_sim.progress import configure_logging
from srcnet_sim.run.runtime import configure_process, importing
from srcnet_sim.fs.stopping import Stopped, stop_on_signals

if TYPE_CHECKING:
    from srcnet_sim.config import Settings

# Nothing numerical is imported at module level (srcnet_sim.config imports numpy): main() sets the process's
# thread settings first, and OpenBLAS reads its own only when numpy loads it.

PRODUCT_FLAGS = ("vis", "dirty", "clean", "cube", "dirty_cube", "truth", "qa")
PRECEDENCE = ("Settings: command line > environment variable (same name, upper case) > TOML file "
              "(--config FILE or $SRCNET_SIM_CONFIG) > default.")


def add_settings_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per setting (but `skip`, fields the command has its own option for, with the same `dest`),
    help showing its environment variable and default."""
    from srcnet_sim.config import FIELDS, Settings, env_name, option_name

    parser.add_argument("--config", type=Path, help="TOML file of settings (keys as the environment variables)")
    group = parser.add_argument_group("settings", PRECEDENCE)
    for field in (f for f in FIELDS if f not in skip):
        info = Settings.model_fields[field]
        default = "a unique UTC timestamp id" if info.default_factory else info.default
        group.add_argument(option_name(field), dest=field, metavar=env_name(field),
                           help=f"{info.description} [env {env_name(field)}; default {default}]")


def add_product_flags(parser: argparse.ArgumentParser) -> None:
    """The seed's product flags: which products go to OUT_DIR."""
    parser.add_argument("--vis", "--visibility", "--visibilities", dest="vis", action="store_true",
                        help="ingest the visibilities (<FILE_PREFIX>measurements.ms)")
    parser.add_argument("--dirty", dest="dirty", action="store_true", help="ingest the dirty image (<FILE_PREFIX>dirty.fits)")
    parser.add_argument("--clean", "--cleaned", dest="clean", action="store_true",
                        help="ingest the cleaned image (<FILE_PREFIX>cleaned.fits)")
    parser.add_argument("--cube", dest="cube", action="store_true",
                        help="ingest the cleaned image cube (<FILE_PREFIX>cube.fits): a plane per channel or per "
                             "IMAGING_CHANNELS_OUT group, per-plane restoring beams; CONTSUB=on subtracts the continuum")
    parser.add_argument("--dirty-cube", dest="dirty_cube", action="store_true",
                        help="ingest the dirty image cube (<FILE_PREFIX>dirty-cube.fits)")
    parser.add_argument("--truth", dest="truth", action="store_true",
                        help="ingest the truth catalogue: every simulated source, intrinsic and apparent (<FILE_PREFIX>truth.fits); "
                             "with GAINS=on also the true gains as CASA caltables (<FILE_PREFIX>truth_caltables.tar), with RFI=on "
                             "the interferers and their mask (<FILE_PREFIX>truth_rfi.fits)")
    parser.add_argument("--qa", dest="qa", action="store_true",
                        help="ingest the QA report of the cleaned image against the truth, PyBDSF (<FILE_PREFIX>qa.tar); "
                             "without it a cleaned image's QA is only logged")


def chosen_products(args: argparse.Namespace) -> set[str]:
    return {name for name in PRODUCT_FLAGS if getattr(args, name)}


def settings_from_args(args: argparse.Namespace) -> Settings:
    from srcnet_sim.config import FIELDS, load_settings

    cli: dict[str, Any] = {field: getattr(args, field) for field in FIELDS}
    return load_settings(cli=cli, config_file=args.config)


def cmd_run(args: argparse.Namespace) -> int:
    with importing():
        from srcnet_sim.run.pipeline import run

    run(settings_from_args(args), chosen_products(args), overwrite=args.overwrite, notification=args.notification,
        preview_dir=Path(args.preview_dir) if args.preview_dir else None, restart=args.restart)
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from srcnet_sim.fs.space import free_bytes
    from srcnet_sim.sizing import human
    from srcnet_sim.simulate.observation import gpu_block_device_bytes
    from srcnet_sim.run.plan import PRODUCTS, plan
    from srcnet_sim.run.preflight import preflight_problems

    settings = settings_from_args(args)
    run_plan = plan(settings, chosen_products(args) or {"vis"})
    e = run_plan.estimate
    temporary = Path(tempfile.gettempdir())
    gpu_steps, gpu_need = gpu_block_device_bytes(run_plan.observation)

    def listing(products: tuple[str, ...] | frozenset[str], name_of) -> str:
        names = [f"{name_of(p)} ({human(run_plan.product_bytes(p))})" for p in PRODUCTS if p in products]
        return ", ".join(names) or "nothing"

    lines = [
        f"channels                {e.n_channels}",
        f"time steps              {e.n_times}",
        f"baselines               {e.n_baselines} ({e.n_dishes} dishes)",
        f"correlations            {e.n_correlations}",
        f"sources                 {e.n_sources}",
        f"measurements            {e.measurements}",
        f"MS minimum size         {human(e.ms_min_bytes)} (measurements x 8 bytes)",
        f"MS expected size        {human(e.ms_expected_bytes)}",
        *([f"MSv4 expected size      {human(e.msv4_bytes)} (zarr: raw visibilities and UVW, flags and weights "
           "Blosc-compressed; staged as an uncompressed zip)"] if "msv4" in run_plan.made else []),
        f"image minimum size      {human(e.image_min_bytes)} (npixel^2 x 1 MFS channel x 8 bytes)",
        f"image file size         {human(e.image_file_bytes)} (one MFS plane, float32)",
        *cube_lines(run_plan),
        f"staged in OUT_DIR       {run_plan.product_dir}: {listing(run_plan.products, run_plan.staged_name)} + .meta",
        f"made in temporary dir   {temporary}: {listing(run_plan.made, run_plan.file_name)} (removed at the end)",
        f"blocks                  {e.n_blocks} of {e.block_times} time steps x {e.block_channels} channels "
        f"(sized to MEMORY_LIMIT {human(e.memory_limit_bytes)} per worker)",
        f"peak memory per worker  {human(e.simulate_peak_bytes)} (simulation, process included)",
        f"peak memory             {human(e.peak_memory_bytes)}",
        f"GPU device memory       {human(gpu_need)} per block of {gpu_steps} time steps (BACKEND=gpu; less in chunks)",
        f"free in OUT_DIR         {human(free_bytes(run_plan.product_dir))}",
        f"free in temporary dir   {human(free_bytes(temporary))}",
    ]
    lines += sky_cache_lines(settings)
    if {"vis", "msv4"} & set(run_plan.made):
        lines += duration_lines(run_plan)
    lines += cube_duration_lines(run_plan)
    if args.k8s:
        from srcnet_sim.deploy import k8s

        sizes = k8s.sizing(run_plan)
        lines += [
            f"k8s cpu request/limit   {sizes['cpu_request']} / {sizes['cpu_limit']}",
            f"k8s memory req./limit   {sizes['memory_request']} / {sizes['memory_limit']}",
            f"k8s PVC temporal-scratch {sizes['scratch_pvc']} (everything made, with headroom)",
            f"k8s PVC ingest-area     {sizes['ingest_pvc']} (staged products until ingested)",
        ]
    problems = preflight_problems(run_plan)
    for resource, problem in problems.items():
        verdict = "fits" if problem is None else f"does not fit: {problem}"
        lines.append(f"verdict {resource:<15} {verdict}")
    print("\n".join(lines))
    refused = next((problem for problem in problems.values() if problem is not None), None)
    if args.check and refused is not None:
        raise refused  # `run` would refuse with this line: exit 2
    return 0


def duration_lines(run_plan) -> list[str]:
    """`estimate` lines: the simulation's duration predicted from a short calibration of the kernels here."""
    from srcnet_sim.run.calibrate import predict_plan
    from srcnet_sim.progress import duration

    p, options = predict_plan(run_plan)
    threads = f"{options.threads} thread{'s' if options.threads > 1 else ''}"
    where = f"{options.workers} Dask worker{'s' if options.workers > 1 else ''} x {threads}" if options.kind == "dask" \
        else f"this machine, {threads}"
    return [
        f"simulation time         {duration(p.total_s)} ({where}): compute {duration(p.compute_s)}, "
        f"writing {duration(p.write_s)}",
        f"  calibrated here         one time step = {p.step_fixed_s * 1e3:.1f} ms + {p.step_per_channel_s * 1e3:.2f} ms "
        f"per channel (timed on this run's dishes and sources); MS writing {p.ms_bytes_per_s / 2**20:.0f} MiB/s, "
        f"disk {p.disk_bytes_per_s / 2**20:.0f} MiB/s (written and fsync'ed in TMPDIR)",
    ]


def cube_duration_lines(run_plan) -> list[str]:
    """`estimate` lines for --cube / --dirty-cube: cube imaging's duration, from imaging a calibration plane here
    (run.cube_calibrate)."""
    from srcnet_sim.progress import duration
    from srcnet_sim.run.cube_calibrate import REPLICAS, predict_cube_imaging
    from srcnet_sim.run.plan import CUBES

    if not set(CUBES) & set(run_plan.made):
        return []
    p = predict_cube_imaging(run_plan)
    short = lambda seconds: f"{seconds:.1f} s" if seconds < 60 else duration(seconds)  # noqa: E731
    cleaned = f", {p.major_cycles} major cycles" if "cube" in run_plan.made else ", dirty"
    return [f"cube imaging time       {short(p.total_s)}: {p.planes} planes x {short(p.plane_s)}, "
            f"{p.workers} at a time x {p.threads} thread{'s' if p.threads > 1 else ''}"
            + (f", + {short(p.reorder_s)} reordering the MS" if p.reorder_s else ""),
            f"  calibrated here         one plane = {p.fixed_s:.2f} s + {p.per_sample_s * 1e9:.1f} ns per visibility "
            f"sample (a calibration plane of this run imaged as is and x{REPLICAS}{cleaned})"]


def cube_lines(run_plan) -> list[str]:
    """`estimate` lines for --cube / --dirty-cube: the cube's size and the memory of cube imaging."""
    from srcnet_sim.run.plan import CUBES
    from srcnet_sim.sizing import CHUNK_SAMPLES, IMAGE_WORKING_BYTES_PER_PIXEL, STOKES_I_SAMPLE_BYTES, human

    if not set(CUBES) & set(run_plan.made):
        return []
    npix, planes = run_plan.imaging.npix, len(run_plan.imaging.cube_planes)
    per_plane = npix * npix * IMAGE_WORKING_BYTES_PER_PIXEL
    return [f"cube file size          {human(run_plan.product_bytes('cube'))} ({planes} planes of npixel^2 float32 "
            f"+ BEAMS table)",
            f"cube imaging memory     {human(per_plane)} per plane imaged at once + at most "
            f"{human(CHUNK_SAMPLES * STOKES_I_SAMPLE_BYTES)} of visibilities (planes in parallel: one per core, within half the available memory)",
            *([f"cube imaging scratch    {human(run_plan.cube_reorder_bytes)} in TMPDIR (the MS's Stokes I reordered by "
               "plane, read once from the MS)"] if run_plan.cube_reorder_bytes else [])]


def sky_cache_lines(settings: Settings) -> list[str]:
    """`estimate` lines for SKY_MODEL=MIGHTEE_L1 without SKY_MODEL_PATH: the downloaded catalogue and its cache."""
    from srcnet_sim.fs.space import free_bytes
    from srcnet_sim.sizing import human
    from srcnet_sim.sky import download

    if not download.uses_download(settings.sky_model, settings.sky_model_path):
        return []
    cached = download.cached_path(download.cache_dir(settings.sky_model_cache), settings.mightee_l1_url)
    size = download.cached_bytes(settings.sky_model, settings.sky_model_path, settings.sky_model_cache,
                                 settings.mightee_l1_url)
    return [f"sky catalogue           {cached} ({human(size)}, downloaded once from MIGHTEE_L1_URL, then reused)",
            f"free in SKY_MODEL_CACHE {human(free_bytes(cached.parent))}"]


def _in_range(option: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        raise UserInputError(option, f"{value} is not a finite number in {'(' if low_open else '['}{low:g}, {high:g}]")


def image_name(ms: Path) -> str:
    """The images' default name prefix: the MS's name without .ms, .ps.zarr or .ps.zarr.zip."""
    name = ms.name
    for suffix in (".zip", ".zarr", ".ps", ".ms"):
        name = name.removesuffix(suffix)
    return name


def check_image_options(args: argparse.Namespace) -> None:
    """Validate `srcnet-sim image` options before the MS is read: each error names its option."""
    from srcnet_sim.config import MIN_NPIXEL
    from srcnet_sim.fs.input_files import directory, regular_file
    from srcnet_sim.imaging.grid_checks import check_horizon
    from srcnet_sim.products import naming
    from srcnet_sim.run.preflight import check_imaging_memory

    if args.npixel < MIN_NPIXEL or args.npixel % 2:
        raise UserInputError("--npixel", f"{args.npixel} must be even and at least {MIN_NPIXEL}")
    _in_range("--cellsize-arcsec", args.cellsize_arcsec, 0.0, 3600.0 * 180.0, low_open=True)
    check_horizon("--cellsize-arcsec", args.npixel, math.radians(args.cellsize_arcsec / 3600.0))
    check_imaging_memory("--npixel", args.npixel)
    _in_range("--robust", args.robust, -2.0, 2.0)
    if args.niter < 0:
        raise UserInputError("--niter", f"{args.niter} must be >= 0 (0: dirty image only)")
    if args.channels_out is not None and args.channels_out < 0:
        raise UserInputError("--channels-out", f"{args.channels_out} must be >= 0 (0: one plane per channel)")
    _in_range("--gain", args.gain, 0.0, 1.0, low_open=True)
    _in_range("--mgain", args.mgain, 0.0, 1.0, low_open=True)
    _in_range("--auto-threshold", args.auto_threshold, 0.0, math.inf)
    _in_range("--threshold", args.threshold, 0.0, math.inf)
    _in_range("--multiscale-bias", args.multiscale_bias, 0.0, 1.0, low_open=True)
    if args.multiscale_scales:
        try:
            scales = [float(v) for v in args.multiscale_scales.split(",")]
        except ValueError:
            scales = [math.nan]
        if not all(math.isfinite(v) and 0.0 <= v <= args.npixel for v in scales):
            raise UserInputError("--multiscale-scales", f"{args.multiscale_scales!r} is not a comma-separated list of "
                                 f"pixel sizes in 0..{args.npixel}")
    out_dir = Path(args.out_dir) if args.out_dir else Path.cwd()
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserInputError("--out-dir", f"{out_dir} is not a writable directory")
    ms = Path(args.ms)
    if os.path.isfile(ms):  # an MSv4's staged zip (imaging.msdata.open_visibilities)
        regular_file(ms, "MS", "MeasurementSet v4 zip")
    else:
        ms = directory(ms, "MS", "MeasurementSet")
        if os.path.lexists(ms / "table.dat"):
            regular_file(ms / "table.dat", "MS", "MeasurementSet table")
    name = args.name if args.name is not None else image_name(ms)
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise UserInputError("--name", f"{name!r} is not a file name prefix: printable characters, no '/'")
    kinds = ("dirty", "cleaned", "residual", "model", "psf", "dirty-cube", "cube")
    naming.check_path_lengths(out_dir, [f"{name}-{kind}.fits" for kind in kinds], "--out-dir", name_setting="--name")


def cmd_image(args: argparse.Namespace) -> int:
    from srcnet_sim.constants import RAD_PER_ARCSEC
    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.imager import ImagingParameters
    from srcnet_sim.imaging.pipeline import image_measurement_set
    from srcnet_sim.imaging.products import PREVIEW_KINDS
    from srcnet_sim.progress import logger

    check_image_options(args)
    ms = Path(args.ms)
    out_dir = Path(args.out_dir) if args.out_dir else Path.cwd()
    if not out_dir.is_dir():
        raise UserInputError("--out-dir", f"{out_dir} does not exist")
    name = args.name or image_name(ms)
    params = ImagingParameters(npix=args.npixel, cell_rad=args.cellsize_arcsec * RAD_PER_ARCSEC,
                               weighting=args.weighting, robust=args.robust, allow_uv_cut=args.allow_uv_cut,
                               beam_fit=args.beam_fit)
    scales = None
    if args.multiscale_scales:
        try:
            scales = tuple(float(v) for v in args.multiscale_scales.split(","))
        except ValueError as exc:
            raise UserInputError("--multiscale-scales", f"{args.multiscale_scales!r} is not a comma-separated list of pixel sizes") from exc
    clean = CleanParameters(gain=args.gain, mgain=args.mgain, niter=args.niter, auto_threshold=args.auto_threshold,
                            threshold_jy=args.threshold, multiscale=args.multiscale, multiscale_scales_px=scales,
                            multiscale_bias=args.multiscale_bias)
    kinds = ["dirty"] + (["cleaned"] if args.niter > 0 else [])
    kinds += [k for k in ("residual", "model", "psf") if getattr(args, f"save_{k}")]
    if args.channels_out is not None:
        kinds = ["dirty"] + (["cleaned"] if args.niter > 0 else [])
    suffix = {"dirty": "dirty-cube", "cleaned": "cube"} if args.channels_out is not None else {}
    paths = {kind: out_dir / f"{name}-{suffix.get(kind, kind)}.fits" for kind in kinds}
    for path in paths.values():
        if path.exists() and not args.overwrite:
            raise UserInputError("--name", f"{path} exists already; choose another --name or add --overwrite")
    if args.channels_out is not None:
        written = image_cube_of(ms, params, clean if args.niter > 0 else None, args.channels_out, paths, name)
    else:
        written = image_measurement_set(ms, params, clean if args.niter > 0 else None, paths, name,
                                        previews=() if args.no_preview else PREVIEW_KINDS).written
    for path in written.values():
        logger.info("wrote %s", path)
    return 0


def image_cube_of(ms_path: Path, params, clean, channels_out: int, paths: dict[str, Path], name: str) -> dict[str, Path]:
    """`srcnet-sim image --channels-out N`: the dirty (and cleaned) cubes of an MS, N planes (0: one per channel)."""
    from srcnet_sim.imaging.channels import channel_groups
    from srcnet_sim.imaging.cube import cube_description, image_cube, open_measurement_set

    ms = open_measurement_set(ms_path)
    groups = channel_groups(len(ms.freq_hz), channels_out or None, "--channels-out")
    return image_cube(ms, params, clean, groups, paths, cube_description(ms, params.cell_rad, name))


def cmd_qa(args: argparse.Namespace) -> int:
    from srcnet_sim.progress import logger
    from srcnet_sim.qa.cube_io import is_line_cube
    from srcnet_sim.qa.report import make_report, summary_lines

    from srcnet_sim.fs.input_files import regular_file

    image = regular_file(Path(args.image), "IMAGE", "image")
    truth = regular_file(Path(args.truth), "TRUTH", "truth catalogue")
    out_dir = Path(args.out_dir) if args.out_dir else Path.cwd()
    if not out_dir.is_dir():
        raise UserInputError("--out-dir", f"{out_dir} does not exist")
    prefix = args.name if args.name is not None else image.name.removesuffix(".fits") + "-"
    if is_line_cube(image):  # a FREQ axis of more than one plane: score line detections (qa.line_report)
        from srcnet_sim.qa.line_report import make_line_report, summary_lines
        report = make_line_report(image, truth, out_dir, prefix=prefix)
    else:
        report = make_report(image, truth, out_dir, prefix=prefix)
    for line in summary_lines(report.summary):
        logger.info("%s", line)
    for path in report.files:
        logger.info("wrote %s", path)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from srcnet_sim.ingest.rucio_ingest import Ingestor, connect

    staging_dir = Path(args.staging_dir)
    if not staging_dir.is_dir():
        raise UserInputError("STAGING_DIR", f"{staging_dir} is not a directory")
    rse = args.rse or os.environ.get("RUCIO_RSE")
    if not rse:
        raise UserInputError("--rse", "name the RSE to upload to (--rse or RUCIO_RSE)")
    parent, namespace = staging_dir.resolve().parent, staging_dir.resolve().name
    done = Path(args.done_dir) if args.done_dir else parent / "done" / namespace
    failed = Path(args.failed_dir) if args.failed_dir else parent / "failed" / namespace
    ingestor = Ingestor(connect(args.attempts, args.backoff), rse, args.attempts, args.backoff)
    report = ingestor.run(staging_dir, done, failed)
    print(f"ingested {len(report.done)}, failed {len(report.failed)} (done: {done}, failed: {failed})")
    return 1 if report.failed else 0


def cmd_k8s_manifest(args: argparse.Namespace) -> int:
    from srcnet_sim.deploy import k8s
    from srcnet_sim.run.plan import plan

    if args.dask_workers is not None:
        if args.cronjob or args.gpu:
            raise UserInputError("--dask-workers", "renders a DaskJob (CPU workers, run once): not with --cronjob or --gpu")
        if not args.dask_workers.isdigit() or not 1 <= int(args.dask_workers) <= k8s.DASK_MAX_WORKERS:
            raise UserInputError("--dask-workers", f"{args.dask_workers!r} is not a number of workers from 1 to "
                                 f"{k8s.DASK_MAX_WORKERS}")
    settings = settings_from_args(args)
    products = chosen_products(args) or {"vis", "dirty", "clean"}
    run_plan = plan(settings, products)
    sizes = k8s.sizing(run_plan)
    flags = [f"--{p.replace('_', '-')}" for p in PRODUCT_FLAGS if p in products]
    make = (lambda *a: k8s.cronjob(*a, schedule=args.cronjob)) if args.cronjob else k8s.job
    if args.dask_workers is not None:
        workers = k8s.dask_worker_sizing(settings, int(args.dask_workers))
        make = lambda *a: k8s.dask_job(*a, workers=workers)  # noqa: E731
    document = make(settings, sizes, ["run", *flags])
    if args.gpu:
        document = k8s.with_gpu(document)
    print(k8s.render(document, sizes, settings), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from srcnet_sim import __version__

    parser = argparse.ArgumentParser(prog="srcnet-sim", description="Mock SKA-Mid observations as SRCNet data products.")
    parser.add_argument("--version", action="version", version=f"srcnet-sim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="simulate and write the chosen products", description=PRECEDENCE)
    add_product_flags(run_parser)
    add_settings_options(run_parser)
    run_parser.add_argument("--overwrite", action="store_true", help="replace products already staged with their .meta")
    run_parser.add_argument("--restart", action="store_true", help="discard the MS an interrupted run with these product "
                            "names left in TMPDIR (srcnet-resume-*) and start over, instead of resuming it")
    run_parser.add_argument("--notification", action="store_true",
                            help="also stage <FILE_PREFIX>notification.json for SRCNet's newer ingestion (ska-src-mm-notification)")
    run_parser.add_argument("--preview-dir", metavar="DIR",
                            help="also write PNG quick-looks of the chosen images here (outside OUT_DIR: the ingestor "
                                 "takes only products with a .meta)")
    run_parser.set_defaults(handler=cmd_run)
    estimate_parser = commands.add_parser("estimate", help="sizes, memory and free space of a run", description=PRECEDENCE)
    add_product_flags(estimate_parser)
    estimate_parser.add_argument("--k8s", action="store_true", help="also print Kubernetes requests, limits and PVC sizes")
    estimate_parser.add_argument("--check", action="store_true",
                                 help="exit 2 with run's error line where `run` would refuse (memory, OUT_DIR, TMPDIR)")
    add_settings_options(estimate_parser)
    estimate_parser.set_defaults(handler=cmd_estimate)
    add_image_parser(commands)
    qa_parser = commands.add_parser("qa", help="QA report of an image or cube against a truth catalogue",
                                    description="Find sources in a restored FITS image with PyBDSF, cross-match them with a "
                                                "truth catalogue (srcnet-sim's <FILE_PREFIX>truth.fits, or any catalogue "
                                                "SKY_MODEL reads) and write a JSON summary and PNG plots. A cube (a FREQ "
                                                "axis of more than one plane) gets the line report instead: lines found "
                                                "by smooth-and-clip, scored against the truth's lines (<name>line-qa.json).")
    qa_parser.add_argument("image", metavar="IMAGE", help="restored image (FITS, BMAJ/BMIN in the header) or cube "
                           "(Jy/beam, restoring beams in a BEAMS table or the header)")
    qa_parser.add_argument("truth", metavar="TRUTH", help="truth catalogue (FITS truth file, MIGHTEE FITS, CSV, OSKAR text)")
    qa_parser.add_argument("--out-dir", help="directory for the report [current directory]")
    qa_parser.add_argument("--name", help="file name prefix of the report [the image name and '-']")
    qa_parser.set_defaults(handler=cmd_qa)
    manifest_parser = commands.add_parser("k8s-manifest", help="print the Kubernetes Job for the current settings",
                                          description="Print job.yaml (deploy/k8s) for the current settings, with requests, "
                                                      "limits and PVC sizes from the resource estimate. " + PRECEDENCE)
    add_product_flags(manifest_parser)
    manifest_parser.add_argument("--cronjob", metavar="SCHEDULE", help="render a CronJob with this schedule (e.g. '0 * * * *')")
    manifest_parser.add_argument("--dask-workers", metavar="N",
                                 help="render a DaskJob (Dask Kubernetes operator) with N workers of MEMORY_LIMIT and "
                                      "WORKER_THREADS each, instead of the Job")
    manifest_parser.add_argument("--gpu", action="store_true",
                                 help="run on one NVIDIA GPU: GPU image, BACKEND=gpu, nvidia.com/gpu: 1, GPU node selector")
    add_settings_options(manifest_parser, skip=("dask_workers",))  # --dask-workers N is DASK_WORKERS there too
    manifest_parser.set_defaults(handler=cmd_k8s_manifest)
    ingest_parser = commands.add_parser("ingest", help="upload staged products to Rucio, as the SRCNet ingestor does",
                                        description="Upload every <name> with <name>.meta in STAGING_DIR to Rucio "
                                                    "(client settings from RUCIO_CONFIG), then move the pair to the done "
                                                    "or failed area.")
    ingest_parser.add_argument("staging_dir", metavar="STAGING_DIR", help="OUT_DIR/<RUCIO_NAMESPACE>")
    ingest_parser.add_argument("--rse", help="RSE to upload to [env RUCIO_RSE]")
    ingest_parser.add_argument("--done-dir", help="where ingested pairs go [STAGING_DIR/../done/<namespace>]")
    ingest_parser.add_argument("--failed-dir", help="where refused pairs go, with a .reason file [STAGING_DIR/../failed/<namespace>]")
    ingest_parser.add_argument("--attempts", type=int, default=5, help="attempts per Rucio call on connection errors [5]")
    ingest_parser.add_argument("--backoff", type=float, default=1.0, help="first back-off, seconds, doubled each retry [1]")
    ingest_parser.set_defaults(handler=cmd_ingest)
    return parser


def add_image_parser(commands: argparse._SubParsersAction) -> None:
    """`srcnet-sim image MS`: dirty and cleaned MFS Stokes I images of any MeasurementSet."""
    from srcnet_sim.imaging.beam import BEAM_FITS
    from srcnet_sim.imaging.weighting import WEIGHTINGS

    p = commands.add_parser("image", help="dirty and cleaned images of a MeasurementSet",
                            description="Dirty and cleaned MFS Stokes I images of a MeasurementSet, WSClean-compatible.")
    p.add_argument("ms", help="the MeasurementSet: a v2 directory, or a v4 processing set (a zarr directory or its staged .zip)")
    p.add_argument("--npixel", type=int, default=2024, help="pixels per side (even, >= 32) [2024]")
    p.add_argument("--cellsize-arcsec", type=float, required=True, help="pixel size, arcsec")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="uniform", help="imaging weights [uniform, as WSClean]")
    p.add_argument("--robust", type=float, default=0.0, help="Briggs robustness [0]")
    p.add_argument("--niter", type=int, default=50_000, help="minor iterations in all; 0: dirty image only [50000]")
    p.add_argument("--gain", type=float, default=0.1, help="minor-loop gain [0.1]")
    p.add_argument("--mgain", type=float, default=0.8, help="fraction of the peak cleaned per major cycle [0.8]")
    p.add_argument("--auto-threshold", type=float, default=3.0, help="stop at this many robust sigmas [3]")
    p.add_argument("--threshold", type=float, default=0.0, help="absolute stopping threshold, Jy/beam [0]")
    p.add_argument("--multiscale", action="store_true", help="multi-scale clean (extended emission)")
    p.add_argument("--multiscale-scales", help="scale diameters in pixels, comma-separated [0, 2, 4, 8.. beams]")
    p.add_argument("--multiscale-bias", type=float, default=0.6, help="scale bias, as WSClean [0.6]")
    p.add_argument("--beam-fit", choices=BEAM_FITS, default="wsclean",
                   help="restoring-beam fit: as WSClean 3.1 does it, or over the whole fit box [wsclean]")
    p.add_argument("--allow-uv-cut", action="store_true", help="image even if the cell leaves long baselines out")
    p.add_argument("--channels-out", type=int, help="write image cubes (<name>-dirty-cube.fits, <name>-cube.fits) of "
                   "this many planes, each an equal group of channels (0: one plane per channel), as WSClean's "
                   "-channels-out; without it, one MFS image")
    p.add_argument("--out-dir", help="directory for the images [current directory]")
    p.add_argument("--name", help="file name prefix [the MS name]")
    for kind in ("residual", "model", "psf"):
        p.add_argument(f"--save-{kind}", action="store_true", help=f"also write <name>-{kind}.fits")
    p.add_argument("--no-preview", action="store_true", help="write no PNG quick-looks")
    p.add_argument("--overwrite", action="store_true", help="replace existing images")
    p.set_defaults(handler=cmd_image)


def main(argv: list[str] | None = None) -> int:
    configure_process()  # before anything imports numpy or numba
    configure_logging()
    with importing():
        args = build_parser().parse_args(argv)
    try:
        with stop_on_signals():
            return args.handler(args)
    except UserInputError as exc:
        print(f"srcnet-sim: error: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"srcnet-sim: error: {exc}", file=sys.stderr)
        return 3
    except QAError as exc:  # the QA report could not be made; the run's other products are staged
        print(f"srcnet-sim: error: {exc}", file=sys.stderr)
        return 5
    except DiskFullError as exc:
        print(f"srcnet-sim: error: {exc}", file=sys.stderr)
        return 4
    except (OSError, RuntimeError) as exc:
        if not is_disk_full(exc):
            raise
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"srcnet-sim: error: no space left on device{where}: {str(exc).splitlines()[0]}; "
              "its scratch and partial files were removed", file=sys.stderr)
        return 4
    except Stopped as stop:
        print(f"srcnet-sim: stopped by {stop.name}; its scratch and partial files were removed", file=sys.stderr)
        return stop.exit_code
    finally:
        gc.freeze()  # the process ends next: its teardown need not search the run's objects for cycles either


if __name__ == "__main__":
    sys.exit(main())
