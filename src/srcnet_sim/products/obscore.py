"""ObsCore records derived from the written files (MS tables, FITS headers), not from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnet_sim.constants import ARCSEC_PER_DEG, SECONDS_PER_DAY, SPEED_OF_LIGHT_M_S
from srcnet_sim.vis.reader import MainTableScan, MSMetadata, read_metadata, scan_main_table

FACILITY = "SKAO"
INSTRUMENT = "SKA-Mid"
DEFAULT_ACCESS_URL = "https://datalink.ivoa.srcdev.skao.int/rucio/links?id={namespace}:{name}"
# The visibilities' access formats: a tar of the CASA MeasurementSet v2 directory; an uncompressed zip of the
# MeasurementSet v4 zarr (format 3) store, which zarr's ZipStore opens in place (xradio's schema, MSv4 4.0.1).
MSV2_ACCESS_FORMAT = "application/x-tar"
MSV4_ACCESS_FORMAT = "application/zip; profile=zarr-v3-msv4"
# casacore Stokes codes -> ObsCore pol_states labels.
# The truth catalogue and the QA report are tables of measurements (ObsCore 1.1 dataproduct_type
# "measurements"); calib_level 4, ObsCore's level of analysis products, sorts them after the images (3)
# they describe, so that a search for science-ready images (calib_level 3) does not return them.
MEASUREMENTS_CALIB_LEVEL = 4
STOKES_LABELS = {1: "I", 2: "Q", 3: "U", 4: "V", 5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX", 12: "YY"}


@dataclass(frozen=True)
class Identity:
    """Identifiers that come from the run, not from the files."""

    obs_collection: str
    obs_id: str
    ivoid_authority: str
    ivoid_path: str
    namespace: str
    access_url_template: str = DEFAULT_ACCESS_URL


def common_fields(identity: Identity, name: str, size_bytes: int) -> dict:
    return {
        "obs_collection": identity.obs_collection,
        "obs_id": identity.obs_id,
        "obs_publisher_did": f"ivo://{identity.ivoid_authority}{identity.ivoid_path}?{identity.namespace}:{name}",
        "access_url": identity.access_url_template.format(namespace=identity.namespace, name=name),
        "access_estsize": int(np.ceil(size_bytes / 1024)),
        "facility_name": FACILITY,
        "em_ucd": "em.freq",
        "o_ucd": "phot.flux.density",
    }


def _wavelengths(freq_low_hz: float, freq_high_hz: float) -> dict:
    return {"em_min": SPEED_OF_LIGHT_M_S / freq_high_hz, "em_max": SPEED_OF_LIGHT_M_S / freq_low_hz}


def visibility_record(ms_path: Path, identity: Identity, name: str, size_bytes: int,
                      scan: MainTableScan | None = None) -> dict:
    """ObsCore of a MeasurementSet v2 (calib_level 1, dataproduct_type visibility, staged as a tar); `scan`: its
    main table's scan when a reader made one already (imaging), else it is scanned here."""
    scan = scan_main_table(ms_path) if scan is None else scan
    return _visibility_fields(read_metadata(ms_path), scan, identity, name, size_bytes, MSV2_ACCESS_FORMAT)


def msv4_record(store_path: Path, identity: Identity, name: str, size_bytes: int,
                scan: MainTableScan | None = None) -> dict:
    """ObsCore of a MeasurementSet v4 processing set (calib_level 1, dataproduct_type visibility, staged as an
    uncompressed zip of the zarr store), from the store itself (vis.msv4.read_summary); `scan`: the main-table scan
    of the same visibilities when a reader made one already (imaging, of the MSv2 or the MSv4), else scanned here."""
    from srcnet_sim.vis.msv4 import read_summary

    meta, scan = read_summary(store_path, scan)
    return _visibility_fields(meta, scan, identity, name, size_bytes, MSV4_ACCESS_FORMAT)


def _visibility_fields(meta: MSMetadata, scan: MainTableScan, identity: Identity, name: str, size_bytes: int,
                       access_format: str) -> dict:
    """The ObsCore fields of visibilities, whatever their format: from the frequencies, phase centre, correlations
    and telescope (meta) and the time samples and longest baseline (scan)."""
    freq, width, corr = meta.freq_hz, meta.channel_width_hz, meta.corr_types
    ra, dec = np.degrees(meta.phase_centre_rad)
    start_s, end_s, longest_m, samples = scan.start_s, scan.end_s, scan.longest_uv_m, scan.sample_intervals_s
    f_high = float((freq + width / 2).max())
    return {
        **common_fields(identity, name, size_bytes),
        "dataproduct_type": "visibility",
        "calib_level": 1,
        "access_format": access_format,
        "instrument_name": meta.telescope_name or INSTRUMENT,
        "s_ra": float(ra),
        "s_dec": float(dec),
        "s_resolution": float(np.degrees(SPEED_OF_LIGHT_M_S / f_high / longest_m) * ARCSEC_PER_DEG) if longest_m > 0 else None,
        **_wavelengths(float((freq - width / 2).min()), f_high),
        "em_xel": int(len(freq)),
        "em_res_power": float(np.mean(freq) / np.mean(width)),
        "t_min": start_s / SECONDS_PER_DAY,
        "t_max": end_s / SECONDS_PER_DAY,
        "t_exptime": float(sum(samples.values())),
        "t_resolution": float(np.median(list(samples.values()))),
        "t_xel": len(samples),
        "pol_states": "/" + "/".join(STOKES_LABELS.get(c, str(c)) for c in corr) + "/",
        "pol_xel": len(corr),
    }


def image_record(fits_path: Path, identity: Identity, name: str) -> dict:
    """ObsCore of a FITS image (calib_level 3): dataproduct_type image for one FREQ plane, cube for several (with
    em_res_power, the planes' centre frequency over their width; s_resolution the widest plane's beam)."""
    from astropy.io import fits
    from astropy.time import Time
    from astropy.wcs import WCS

    with fits.open(fits_path) as hdul:
        head = hdul[0].header
        beam_deg = float(head["BMAJ"]) if "BMAJ" in head else float(np.nanmax(hdul["BEAMS"].data["BMAJ"])) / ARCSEC_PER_DEG
    wcs = WCS(head).celestial
    nx, ny = int(head["NAXIS1"]), int(head["NAXIS2"])
    corners = wcs.pixel_to_world_values([-0.5, nx - 0.5, nx - 0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5])
    polygon = " ".join(f"{ra:.6f} {dec:.6f}" for ra, dec in zip(*corners, strict=True))
    first, width, planes = float(head["CRVAL3"]), float(head["CDELT3"]), int(head.get("NAXIS3", 1))
    low, high = first - abs(width) / 2, first + (planes - 1) * width + abs(width) / 2
    spectral = {"em_res_power": 0.5 * (low + high) / abs(width)} if planes > 1 else {}
    start = Time(head["DATE-OBS"], scale="utc")
    end = Time(head["DATE-END"], scale="utc") if "DATE-END" in head else start
    return {
        **common_fields(identity, name, fits_path.stat().st_size),
        "dataproduct_type": "cube" if planes > 1 else "image",
        "calib_level": 3,
        "access_format": "image/fits",
        "instrument_name": str(head.get("TELESCOP", INSTRUMENT)),
        "s_ra": float(head["CRVAL1"]),
        "s_dec": float(head["CRVAL2"]),
        "s_xel1": nx,
        "s_xel2": ny,
        "s_pixel_scale": abs(float(head["CDELT2"])) * ARCSEC_PER_DEG,
        "s_fov": max(nx, ny) * abs(float(head["CDELT2"])),
        "s_region": f"POLYGON ICRS {polygon}",
        "s_resolution": beam_deg * ARCSEC_PER_DEG,
        **_wavelengths(low, high),
        "em_xel": planes,
        **spectral,
        "t_min": float(start.mjd),
        "t_max": float(end.mjd),
        "pol_states": "/I/",
        "pol_xel": 1,
    }


def _truth_header_fields(head) -> dict:
    """The fields a truth product's FITS header gives: phase centre, field (2 x FILTRAD), band, channels, times."""
    return {
        "s_ra": float(head["OBSRA"]),
        "s_dec": float(head["OBSDEC"]),
        "s_fov": 2.0 * float(head["FILTRAD"]),
        "s_resolution": None,
        **_wavelengths(float(head["FREQLO"]), float(head["FREQHI"])),
        "em_xel": int(head["NCHAN"]),
        "t_min": float(head["MJD-OBS"]),
        "t_max": float(head["MJD-END"]),
    }


def truth_record(fits_path: Path, identity: Identity, name: str) -> dict:
    """ObsCore of the truth catalogue (dataproduct_type measurements, subtype truth-catalogue, calib_level 4).

    Everything comes from the catalogue's header: phase centre, band, observation times, filter radius.
    Its positions are exact, so s_resolution is null.
    """
    from astropy.io import fits

    from srcnet_sim.products.truth import EXTNAME

    with fits.open(fits_path) as hdul:
        head = hdul[EXTNAME].header
    return {
        **common_fields(identity, name, fits_path.stat().st_size),
        "dataproduct_type": "measurements",
        "dataproduct_subtype": "truth-catalogue",
        "calib_level": MEASUREMENTS_CALIB_LEVEL,
        "access_format": "application/fits",
        "instrument_name": str(head.get("TELESCOP", INSTRUMENT)) or INSTRUMENT,
        **_truth_header_fields(head),
        "pol_states": "/I/Q/U/V/",
        "pol_xel": 4,
    }


def qa_record(summary_path: Path, identity: Identity, name: str, size_bytes: int) -> dict:
    """ObsCore of the QA report (dataproduct_type measurements, subtype qa-report, calib_level 4), from its JSON
    summary, which repeats the facts of the image it assessed."""
    import json

    from astropy.time import Time

    summary = json.loads(summary_path.read_text())
    image = summary["image_header"]
    half_band = image["bandwidth_hz"] / 2
    return {
        **common_fields(identity, name, size_bytes),
        "dataproduct_type": "measurements",
        "dataproduct_subtype": "qa-report",
        "calib_level": MEASUREMENTS_CALIB_LEVEL,
        "access_format": "application/x-tar",
        "instrument_name": image.get("telescope") or INSTRUMENT,
        "s_ra": float(image["ra_deg"]),
        "s_dec": float(image["dec_deg"]),
        "s_fov": max(image["npix"]) * image["cell_arcsec"] / 3600,
        "s_resolution": float(summary["restoring_beam"]["major_arcsec"]),
        **_wavelengths(image["freq_hz"] - half_band, image["freq_hz"] + half_band),
        "em_xel": 1,
        "t_min": float(Time(image["date_obs"], scale="utc").mjd),
        "t_max": float(Time(image["date_end"], scale="utc").mjd),
        "pol_states": "/I/",
        "pol_xel": 1,
    }


def caltables_record(directory: Path, identity: Identity, name: str, size_bytes: int, fov_deg: float) -> dict:
    """ObsCore of the true gains' caltables (dataproduct_type measurements, subtype truth-gains, calib_level 4),
    from the tables: the field's direction, the bandpass table's channels, the gain table's solution times.
    fov_deg: the field they apply to (the truth catalogue's, 2 x its filter radius)."""
    from casacore.tables import table

    from srcnet_sim.products.caltables import TABLE_NAMES

    with table(str(directory / TABLE_NAMES["B"] / "SPECTRAL_WINDOW"), ack=False) as spw:
        freq, width = spw.getcell("CHAN_FREQ", 0), np.abs(spw.getcell("CHAN_WIDTH", 0))
    with table(str(directory / TABLE_NAMES["B"] / "FIELD"), ack=False) as field:
        ra, dec = np.degrees(field.getcell("PHASE_DIR", 0)[0])
    with table(str(directory / TABLE_NAMES["G"]), ack=False) as gains:  # rows in time order
        first, last = 0, gains.nrows() - 1
        start_s = gains.getcell("TIME", first) - gains.getcell("INTERVAL", first) / 2
        end_s = gains.getcell("TIME", last) + gains.getcell("INTERVAL", last) / 2
    return {
        **common_fields(identity, name, size_bytes),
        "dataproduct_type": "measurements",
        "dataproduct_subtype": "truth-gains",
        "calib_level": MEASUREMENTS_CALIB_LEVEL,
        "access_format": "application/x-tar",
        "instrument_name": INSTRUMENT,
        "s_ra": float(ra % 360.0),
        "s_dec": float(dec),
        "s_fov": float(fov_deg),
        "s_resolution": None,
        **_wavelengths(float((freq - width / 2).min()), float((freq + width / 2).max())),
        "em_xel": int(len(freq)),
        "t_min": float(start_s) / SECONDS_PER_DAY,
        "t_max": float(end_s) / SECONDS_PER_DAY,
        "pol_states": "/X/Y/",
        "pol_xel": 2,
    }


def rfi_truth_record(fits_path: Path, identity: Identity, name: str) -> dict:
    """ObsCore of the RFI truth (dataproduct_type measurements, subtype truth-rfi, calib_level 4), from its header."""
    from astropy.io import fits

    head = fits.getheader(fits_path, 0)
    return {
        **common_fields(identity, name, fits_path.stat().st_size),
        "dataproduct_type": "measurements",
        "dataproduct_subtype": "truth-rfi",
        "calib_level": MEASUREMENTS_CALIB_LEVEL,
        "access_format": "application/fits",
        "instrument_name": INSTRUMENT,
        **_truth_header_fields(head),
        "pol_states": "/XX/YY/",
        "pol_xel": 2,
    }
