"""The sidecar probe: a run's settings checked against the SRCNet sidecar schema before any work.

Each product's sidecar is built from the settings' own values (namespace, ids, collection, phase centre,
frequencies, times, pixels) and placeholders of the right types for what only the run measures, then
validated; a refusal names the setting it came from.
"""

from __future__ import annotations

from srcnet_sim.config import Settings
from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.errors import UserInputError
from srcnet_sim.products import obscore, sidecar

# Which setting a sidecar value comes from (JSON path in the sidecar -> setting).
SIDECAR_SETTINGS = {
    "namespace": "RUCIO_NAMESPACE", "name": "FILE_PREFIX", "lifetime": "RUCIO_LIFETIME", "dataset_name": "OBS_ID",
    "meta/obs_collection": "OBS_COLLECTION", "meta/obs_id": "OBS_ID", "meta/obs_publisher_did": "IVOID_AUTHORITY",
    "meta/access_url": "RUCIO_NAMESPACE", "meta/s_ra": "PHASE_CENTER_RA_DEG", "meta/s_dec": "PHASE_CENTER_DEC_DEG",
    "meta/em_min": "END_FREQ_HZ", "meta/em_max": "START_FREQ_HZ", "meta/em_xel": "FREQ_INC_HZ",
    "meta/t_exptime": "OBS_LENGTH_HOURS", "meta/t_resolution": "NUM_TIME_STAMPS", "meta/t_xel": "NUM_TIME_STAMPS",
    "meta/s_xel1": "IMAGING_NPIXEL", "meta/s_xel2": "IMAGING_NPIXEL",
}


def _probe_record(settings: Settings, product: str) -> dict:
    """Placeholder ObsCore values of the right types and ranges: only the settings' own values can fail."""
    s = settings
    wavelengths = {"em_min": SPEED_OF_LIGHT_M_S / s.end_freq_hz, "em_max": SPEED_OF_LIGHT_M_S / s.start_freq_hz,
                   "em_xel": s.n_channels, "t_min": 58000.0, "t_max": 58000.1, "s_ra": s.phase_center_ra_deg,
                   "s_dec": s.phase_center_dec_deg, "s_resolution": 1.0}
    if product == "vis":
        return {"dataproduct_type": "visibility", "calib_level": 1, "access_format": "application/x-tar",
                "instrument_name": obscore.INSTRUMENT, "em_res_power": 1.0, "t_exptime": s.length_s,
                "t_resolution": s.interval_s, "t_xel": s.num_time_stamps, "pol_states": "/XX/XY/YX/YY/", "pol_xel": 4,
                **wavelengths}
    cube = {"dataproduct_type": "cube", "em_res_power": 1.0} if product in ("cube", "dirty_cube") else {}
    return {"dataproduct_type": "image", "calib_level": 3, "access_format": "image/fits",
            "instrument_name": obscore.INSTRUMENT, "s_xel1": s.imaging_npixel, "s_xel2": s.imaging_npixel,
            "s_pixel_scale": 1.0, "s_fov": 1.0, "s_region": "POLYGON ICRS" + " 1.0 1.0" * 4, "pol_states": "/I/",
            "pol_xel": 1, **wavelengths, **cube}


def check_sidecar_values(settings: Settings, identity: obscore.Identity, staged_names: dict[str, str]) -> None:
    """Validate each product's sidecar schema against the settings' values (namespace, ids, collection...)."""
    for product, name in staged_names.items():
        meta = {**obscore.common_fields(identity, name, 0), **_probe_record(settings, product)}
        document = {"namespace": settings.rucio_namespace, "name": name, "lifetime": settings.rucio_lifetime,
                    "meta": meta, "dataset_name": settings.obs_id}
        problem = sidecar.problem(document)
        if problem:
            where = problem.split(":", 1)[0]
            setting = SIDECAR_SETTINGS.get(where)
            if setting is None:  # a placeholder failed: the probe, not the user, is wrong
                raise RuntimeError(f"sidecar probe of {name}: {problem}")
            raise UserInputError(setting, f"gives a {name}.meta that the SRCNet sidecar schema refuses ({problem})")
