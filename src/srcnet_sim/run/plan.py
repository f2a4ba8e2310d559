"""The plan of a run: its settings resolved once, every check made, into the immutable parts the stages take.

plan(settings) loads the telescope and the sky, makes the sample times, sizes the run and checks everything
a user can fix (names, sidecar values, horizon, image grid) before any work; the stages (run.stages) and the
pipeline (run.pipeline) then receive the Plan, never the settings.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnet_sim import __version__
from srcnet_sim.config import Settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.channels import channel_groups
from srcnet_sim.fs.space import default_memory_limit
from srcnet_sim.instrument import Telescope, load_telescope
from srcnet_sim.instrument.beams import check_library_beams, power_beam_fwhm_rad
from srcnet_sim.instrument.gains import DishGains, GainParameters
from srcnet_sim.instrument.rfi import Emitters, RfiModel, enu_basis
from srcnet_sim.products import naming, obscore
from srcnet_sim.products.sidecar_probe import check_sidecar_values
from srcnet_sim.progress import logger
from srcnet_sim.run import resume
from srcnet_sim.run.executors import ExecutorOptions, executor_options
from srcnet_sim.simulate import geometry, measures_data
from srcnet_sim.simulate.observation import Observation
from srcnet_sim.sizing import Estimate, estimate, reorder_bytes
from srcnet_sim.sky.resolve import load_sky_model

PRODUCT_NAMES = {"vis": "measurements.ms", "msv4": "measurements.ps.zarr", "dirty": "dirty.fits", "clean": "cleaned.fits", "cube": "cube.fits",
                 "dirty_cube": "dirty-cube.fits", "truth": "truth.fits",
                 "gains": "truth_caltables", "rfi": "truth_rfi.fits", "qa": "qa"}
PRODUCTS = tuple(PRODUCT_NAMES)
CUBES = {"cube": "cleaned", "dirty_cube": "dirty"}  # cube products and the imaging.cube kind each is
MS_ARCHIVE_SUFFIX = ".tar"
ARCHIVED = ("vis", "gains", "qa")  # directories, staged as tar files
ZIP_SUFFIX = ".zip"
ZIPPED = ("msv4",)  # a zarr store, staged as an uncompressed zip that zarr reads in place (products.staging)
VISIBILITIES = ("vis", "msv4")  # the MeasurementSet v2 and v4 of a run, written in one pass (VIS_FORMAT)
QA_PRODUCT_BYTES = 4 * 2**20  # JSON, four PNGs and PyBDSF's source list
CALTABLE_ROW_BYTES = 96  # a caltable row of one channel (TIME .. WEIGHT, measured: 82) with margin
CALTABLE_FIXED_BYTES = 2 * 2**20  # three tables' descriptions and copied subtables (measured: about 0.6 MB for AA*)
NOTIFICATION_NAME = "notification.json"
SEED_DISH_DIAMETER_M = 15.0
HORIZON_CHECK_POINTS = 1441  # elevation is smooth: at most one check a minute over a day



@dataclass(frozen=True)
class ImagingPlan:
    """The images' grid: npix x npix pixels of cell_rad (IMAGING_NPIXEL, IMAGING_CELLSIZE or FOV / npixel),
    field_name the FITS OBJECT (OBS_ID); the cubes' planes, [start, stop) channels each (IMAGING_CHANNELS_OUT),
    and whether the continuum is subtracted before cube imaging (CONTSUB)."""

    npix: int
    cell_rad: float
    field_name: str
    cube_planes: tuple[tuple[int, int], ...] = ()
    contsub: bool = False


@dataclass(frozen=True)
class ProductNames:
    """How the run's products are named and kept: FILE_PREFIX, RUCIO_LIFETIME (s)."""

    file_prefix: str
    lifetime_s: int

    def file_name(self, product: str) -> str:
        """The seed's file name of a product: <FILE_PREFIX>measurements.ms, ...dirty.fits, ...cleaned.fits."""
        return f"{self.file_prefix}{PRODUCT_NAMES[product]}"

    def staged_name(self, product: str) -> str:
        """The name in the staging area and in Rucio: a MeasurementSet or QA report (directories) is staged as a tar."""
        return staged_file_name(self.file_prefix, product)


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, resolved and validated before any work starts, in the parts the stages take:
    the observation (telescope, sky, times, channels), its sizes (estimate), the imaging grid, the product
    identity and names, how blocks are computed (execution) and where products are staged (product_dir).

    settings: what the plan was made from, kept for the run's resumable state and the Kubernetes manifest;
    the stages read the parts, not the settings. filter_radius_rad: the sky's selection radius around the
    phase centre; history: the MS's HISTORY messages."""

    settings: Settings
    telescope: Telescope
    observation: Observation
    estimate: Estimate
    product_dir: Path
    products: frozenset[str]
    identity: obscore.Identity
    names: ProductNames
    imaging: ImagingPlan
    execution: ExecutorOptions
    filter_radius_rad: float
    history: tuple[str, ...]

    def file_name(self, product: str) -> str:
        """The seed's file name of a product (see ProductNames.file_name)."""
        return self.names.file_name(product)

    def staged_name(self, product: str) -> str:
        """The staged name of a product (see ProductNames.staged_name)."""
        return self.names.staged_name(product)

    @property
    def made(self) -> tuple[str, ...]:
        """Products made: the chosen ones and what they need (images need the MS, clean the dirty image)."""
        needed = set(self.products)
        if "qa" in needed:
            needed |= {"clean", "truth"}
        if needed & set(CUBES) and self.imaging.contsub:
            needed.add("clean")  # its model is the continuum subtracted
        if needed & {"dirty", "clean", *CUBES} and "msv4" not in needed:
            needed.add("vis")  # images are made from the MSv2, or from the MSv4 when that is the one made
        if "gains" in needed:
            needed.add("vis")  # the caltables copy the MSv2's subtables (made beside an MSv4, discarded if not chosen)
        if "clean" in needed:
            needed |= {"dirty", "truth"}  # a cleaned image is always compared with the truth (QA in the log)
        return tuple(p for p in PRODUCTS if p in needed)

    @property
    def synthetic_sky(self) -> bool:
        """The sky is SKY_MODEL=SYNTHETIC or SYNTHETIC_HI (a seeded field): SYNTHETIC_SOURCES sets its size."""
        return self.settings.sky_model.strip().upper() in ("SYNTHETIC", "SYNTHETIC_HI")

    @property
    def settings_record(self) -> dict:
        """Every setting's value, as JSON types (the truth catalogue's header)."""
        return self.settings.model_dump()

    def product_bytes(self, product: str) -> int:
        e = self.estimate
        if product == "truth":
            return truth_file_bytes(e.n_sources, e.n_channels)
        if product == "qa":
            return QA_PRODUCT_BYTES
        if product == "gains":
            return caltables_bytes(e.n_times, self.telescope.n_dish, e.n_channels)
        if product == "rfi":  # the uint32 mask, the emitters' table and the headers
            return e.n_times * e.n_channels * 4 + 10 * 2880
        if product in CUBES:
            return cube_file_bytes(self.imaging.npix, len(self.imaging.cube_planes))
        if product == "msv4":
            return e.msv4_bytes
        return e.ms_expected_bytes if product == "vis" else e.image_file_bytes

    @property
    def cube_reorder_bytes(self) -> int:
        """TMPDIR bytes of the cube imaging's reordered Stokes I (imaging.reorder), 0 without a cube of several
        planes."""
        if not set(CUBES) & set(self.made) or len(self.imaging.cube_planes) < 2:
            return 0
        e = self.estimate
        return reorder_bytes(e.n_times * e.n_baselines, e.n_channels)

    def scratch_bytes(self) -> int:
        """What TMPDIR holds at most: every product made, and the cube imaging's reordered Stokes I."""
        return sum(self.product_bytes(p) for p in self.made) + self.cube_reorder_bytes

    def cell_rad(self) -> float:
        """IMAGING_CELLSIZE, or the seed's FOV / npixel."""
        return self.imaging.cell_rad


def staged_file_name(prefix: str, product: str) -> str:
    """<FILE_PREFIX><product file name>, with .tar for the products that are directories (.zip for a zarr store)."""
    suffix = MS_ARCHIVE_SUFFIX if product in ARCHIVED else ZIP_SUFFIX if product in ZIPPED else ""
    return prefix + PRODUCT_NAMES[product] + suffix


def truth_file_bytes(n_sources: int, n_channels: int) -> int:
    """Size of the truth catalogue: a 16-byte name, 18 columns of 8 bytes, 2 per-channel columns, headers."""
    return n_sources * (16 + 18 * 8 + 2 * 8 * n_channels) + 20 * 2880


def cube_file_bytes(npix: int, n_planes: int) -> int:
    """Size of a FITS cube: npix^2 x planes float32, its header and its BEAMS table (20 bytes a plane), in 2880-byte
    FITS blocks."""
    blocks = -(-npix * npix * n_planes * 4 // 2880) + -(-n_planes * 20 // 2880)
    return (blocks + 4) * 2880  # + the primary header, the table's header


def caltables_bytes(n_times: int, n_dish: int, n_channels: int) -> int:
    """Size of the true gains' caltables: n_times x n_dish rows of G, n_dish rows of n_channels in B and Df."""
    rows = n_times * n_dish + 2 * n_dish * n_channels
    return rows * CALTABLE_ROW_BYTES + CALTABLE_FIXED_BYTES


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
        raise UserInputError("--vis", "choose at least one product to ingest: --vis, --dirty, --clean, --cube, "
                             "--dirty-cube, --truth or --qa")
    tables = measures_data.current()  # before anything opens a casacore table
    products = visibility_products(products, settings.vis_format)
    _check_names(settings)
    ident = identity(settings)
    check_sidecar_values(settings, ident, {p: staged_file_name(settings.file_prefix, p) for p in PRODUCTS})
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
    if settings.beam == "everybeam":
        problem = check_library_beams(telescope.diameters_m, settings.freq_hz)
        if problem:
            raise UserInputError("BEAM", problem)
    radius = settings.sky_filter_fwhm * field_of_view_rad(settings)
    sky = load_sky_model(settings.sky_model, settings.sky_model_path, ra0, dec0, radius, settings.synthetic_sources,
                         settings.seed, settings.freq_hz, cache_dir=settings.sky_model_cache,
                         mightee_url=settings.mightee_l1_url)
    observation = Observation(
        telescope=telescope, sky=sky, ra_rad=ra0, dec_rad=dec0, times_s=times_s, interval_s=settings.interval_s,
        freq_hz=settings.freq_hz, channel_width_hz=settings.freq_inc_hz, beam=settings.beam,
        autocorrelations=settings.correlations == "cross+auto", smearing=settings.smearing,
        noise=settings.noise == "on", seed=settings.seed, gains=dish_gains(settings, telescope.n_dish, times_s),
        model_data=settings.model_data == "on", rfi=rfi_model(settings, telescope, times_s),
        rfi_flag_sigma=settings.rfi_flag_sigma,
        dtype=np.complex128 if settings.precision == "double" else np.complex64,
    )
    workers = executor_options(settings.executor, settings.dask_scheduler_address, settings.dask_workers,
                               settings.worker_threads, None).workers
    sizes = estimate(settings.n_channels, settings.num_time_stamps, telescope.n_dish, observation.autocorrelations,
                     len(sky), settings.imaging_npixel, settings.precision == "double", worker_memory_limit(settings),
                     workers, model_data=observation.model_data, flags=observation.rfi is not None,
                     turning_beams=observation.rotating_beams)
    execution = executor_options(settings.executor, settings.dask_scheduler_address, settings.dask_workers,
                                 settings.worker_threads, sizes.memory_limit_bytes)
    cell_rad = (settings.imaging_cellsize if settings.imaging_cellsize is not None
                else field_of_view_rad(settings) / settings.imaging_npixel)
    planes = tuple(channel_groups(settings.n_channels, settings.imaging_channels_out))
    if "truth" in products and observation.gains is not None:
        products = set(products) | {"gains"}  # the truth of the gains goes with the truth catalogue
    if "truth" in products and observation.rfi is not None:
        products = set(products) | {"rfi"}
    run_plan = Plan(settings, telescope, observation, sizes, Path(settings.out_dir) / settings.rucio_namespace,
                    frozenset(products), identity=ident, names=ProductNames(settings.file_prefix, settings.rucio_lifetime),
                    imaging=ImagingPlan(settings.imaging_npixel, cell_rad, settings.obs_id, planes, settings.contsub == "on"),
                    execution=execution,
                    filter_radius_rad=radius, history=history_lines(settings))
    if {"dirty", *CUBES} & set(run_plan.made):
        from srcnet_sim.imaging.grid_checks import check_image_grid  # a run without images loads no imaging

        check_image_grid(settings.imaging_npixel, cell_rad, telescope.itrf_m, times_s, (ra0, dec0), settings.start_freq_hz)
    return run_plan


def visibility_products(products: set[str] | frozenset[str], vis_format: str) -> frozenset[str]:
    """The products with --vis ("vis") resolved by VIS_FORMAT: the MSv2 ("vis"), the MSv4 ("msv4") or both; the
    MSv4 needs xradio's schema packages (zarr, xarray), refused here with the extra to install when missing."""
    products = frozenset(products)
    if "vis" not in products or vis_format == "msv2":
        return products
    try:
        import xarray  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise UserInputError("VIS_FORMAT", f"{vis_format} needs zarr and xarray ({exc.name} is missing); install them "
                             "with: pip install 'srcnet-sim[msv4]'") from None
    return products | {"msv4"} if vis_format == "both" else (products - {"vis"}) | {"msv4"}


def dish_gains(settings: Settings, n_dish: int, times_s: np.ndarray) -> DishGains | None:
    """The dishes' gains drawn for GAINS=on (instrument.gains), their drifts starting at the first sample; None
    when GAINS=off."""
    if settings.gains == "off":
        return None
    parameters = GainParameters(amp_std=settings.gain_amp_std, phase_std_rad=np.radians(settings.gain_phase_std_deg),
                              amp_drift=settings.gain_amp_drift,
                              phase_drift_rad=np.radians(settings.gain_phase_drift_deg),
                              corr_time_s=settings.gain_corr_time_s, bandpass_ripple=settings.gain_bandpass_ripple,
                              leakage_std=settings.gain_leakage_std)
    freq_hz = settings.freq_hz
    return DishGains.draw(parameters, n_dish, settings.seed, float(times_s[0]), (float(freq_hz[0]), float(freq_hz[-1])))


def rfi_model(settings: Settings, telescope: Telescope, times_s: np.ndarray) -> RfiModel | None:
    """The interferers of RFI=on that transmit inside the observed channels (instrument.rfi), with a warning that
    counts them; None when RFI=off, or when none does (the warning says so)."""
    if settings.rfi == "off":
        return None
    emitters = Emitters.draw(settings.seed, float(times_s[0]))
    inside = emitters.in_band(settings.freq_hz, settings.freq_inc_hz)
    band = f"{settings.start_freq_hz / 1e6:.2f}-{settings.end_freq_hz / 1e6:.2f} MHz"
    if not inside.any():
        logger.warning("RFI=on: none of the %d modelled interferers (GNSS 1164-1606 MHz, DME 1025-1150 MHz, GSM "
                       "925-960 MHz) transmits in %s; no RFI is added, nothing is flagged", emitters.n_emit, band)
        return None
    logger.info("rfi: %d of %d modelled interferers transmit in %s: %s", int(inside.sum()), emitters.n_emit, band,
                ", ".join(n for n, keep in zip(emitters.names, inside, strict=True) if keep))
    site = telescope.site
    return RfiModel(emitters.select(inside), telescope.itrf_m - telescope.itrf_m.mean(axis=0),
                    enu_basis(np.radians(site.lon_deg), np.radians(site.lat_deg)), settings.phase_centre_rad[1])


def worker_memory_limit(settings: Settings) -> int:
    """MEMORY_LIMIT, or its default: the available memory with headroom, shared by a LocalCluster's workers."""
    if settings.memory_limit is not None:
        return settings.memory_limit
    options = executor_options(settings.executor, settings.dask_scheduler_address, settings.dask_workers,
                               settings.worker_threads, None)
    local_workers = options.workers if options.kind == "dask" and not options.scheduler_address else 1
    return default_memory_limit(local_workers)


def identity(settings: Settings) -> obscore.Identity:
    """The identifiers of the products that come from the settings."""
    return obscore.Identity(obs_collection=settings.obs_collection, obs_id=settings.obs_id,
                            ivoid_authority=settings.ivoid_authority, ivoid_path=settings.ivoid_path,
                            namespace=settings.rucio_namespace)


def history_lines(settings: Settings) -> tuple[str, ...]:
    """HISTORY messages: the software version, every setting (seed included) but those that only choose how the
    blocks are computed or which formats hold them (the MS is the same whatever they are: VIS_FORMAT=both writes the
    MSv2 of VIS_FORMAT=msv2 byte for byte), as JSON, and the measures tables used."""
    defining = {name: value for name, value in resume.defining_settings(settings).items() if name != "vis_format"}
    return (f"srcnet-sim {__version__}", "settings " + json.dumps(defining, sort_keys=True),
            *measures_data.history_lines(measures_data.current()))
