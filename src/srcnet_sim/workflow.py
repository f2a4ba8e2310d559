"""Orchestration of one run: settings -> telescope, sky, observation -> MeasurementSet. No numerics here."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

from srcnet_sim import __version__
from srcnet_sim.config import Settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.ms.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.progress import logger, track
from srcnet_sim.resources import Estimate, estimate, free_bytes, human
from srcnet_sim.simulate import geometry
from srcnet_sim.simulate.beams import power_beam_fwhm_rad
from srcnet_sim.simulate.observation import Observation, simulate
from srcnet_sim.sky.catalogues import load_sky_model
from srcnet_sim.telescope import Telescope, load_telescope

MS_SUFFIX = "measurements.ms"
SAFE_NAME = re.compile(r"^[A-Za-z0-9._\-]*$")
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

    @property
    def ms_path(self) -> Path:
        return self.product_dir / f"{self.settings.file_prefix}{MS_SUFFIX}"


def field_of_view_rad(settings: Settings) -> float:
    """The seed's field of view: 1.25 lambda_mid / 15 m, lambda_mid at the middle of the band."""
    mid_hz = 0.5 * (settings.start_freq_hz + settings.end_freq_hz)
    return float(power_beam_fwhm_rad(mid_hz, SEED_DISH_DIAMETER_M))


def _check_names(settings: Settings) -> None:
    for setting, value in (("RUCIO_NAMESPACE", settings.rucio_namespace), ("FILE_PREFIX", settings.file_prefix)):
        if not SAFE_NAME.match(value) or ".." in value:
            raise UserInputError(setting, f"{value!r} may hold only letters, digits, '.', '_' and '-' (no '/' or '..')")


def plan(settings: Settings) -> Plan:
    """Resolve telescope, times, sky and sizes; raise UserInputError on anything a user can fix."""
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
    return Plan(settings, telescope, observation, sizes, Path(settings.out_dir) / settings.rucio_namespace)


def preflight(run_plan: Plan) -> None:
    """Refuse to start, with the numbers, when OUT_DIR cannot hold the products."""
    need = run_plan.estimate.ms_expected_bytes
    free = free_bytes(run_plan.product_dir)
    if free < need:
        raise UserInputError("OUT_DIR", f"{run_plan.product_dir} has {human(free)} free but the MeasurementSet needs "
                             f"about {human(need)}; enlarge the volume or shorten the run")
    if run_plan.ms_path.exists():
        raise UserInputError("FILE_PREFIX", f"{run_plan.ms_path} exists already; choose another FILE_PREFIX or OBS_ID, or remove it")


def history_lines(settings: Settings) -> tuple[str, ...]:
    """HISTORY messages: the software version, every setting (seed included), as JSON."""
    return (f"srcnet-sim {__version__}", "settings " + json.dumps(settings.model_dump(), sort_keys=True))


def write_measurement_set(run_plan: Plan, path: Path) -> Path:
    """Simulate every time step and write the MS at `path` (a hidden partial name first, then renamed)."""
    obs = run_plan.observation
    settings = run_plan.settings
    description = MSDescription(
        telescope=run_plan.telescope, freq_hz=obs.freq_hz, channel_width_hz=obs.channel_width_hz,
        phase_centre_rad=(obs.ra_rad, obs.dec_rad), field_name=settings.obs_id,
        time_range_s=(float(obs.times_s[0] - obs.interval_s / 2), float(obs.times_s[-1] + obs.interval_s / 2)),
        history=history_lines(settings), application="srcnet-sim",
    )
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    ant1, ant2 = obs.baselines
    sigma = obs.baseline_sigma()
    try:
        with MeasurementSetWriter(partial, description) as writer:
            for step in track(simulate(obs), len(obs.times_s), "simulate"):
                writer.append(step.time_s, obs.interval_s, ant1, ant2, step.uvw_m, step.vis.astype(np.complex64, copy=False), sigma)
        partial.rename(path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return path


def run(settings: Settings, products: set[str]) -> list[Path]:
    """Run the workflow for the chosen products; returns the paths written to OUT_DIR."""
    if not products:
        raise UserInputError("--vis", "choose at least one product to ingest: --vis")
    logger.info("plan: telescope %s, sky %s", settings.telescope, settings.sky_model)
    run_plan = plan(settings)
    sizes = run_plan.estimate
    logger.info("plan: %d dishes, %d baselines, %d sources, %d time steps x %d channels; MS about %s",
                run_plan.telescope.n_dish, sizes.n_baselines, sizes.n_sources, sizes.n_times, sizes.n_channels,
                human(sizes.ms_expected_bytes))
    preflight(run_plan)
    run_plan.product_dir.mkdir(parents=True, exist_ok=True)
    path = write_measurement_set(run_plan, run_plan.ms_path)
    logger.info("wrote %s", path)
    return [path]
