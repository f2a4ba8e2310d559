"""Image one MeasurementSet into FITS files (with PNG quick-looks): what `srcnet-sim image` and a run share."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from srcnet_sim.constants import RAD_PER_ARCSEC
from srcnet_sim.imaging.clean import CleanParameters
from srcnet_sim.imaging.imager import ImagingParameters, make_images
from srcnet_sim.imaging.sources import open_visibilities
from srcnet_sim.imaging.products import PREVIEW_KINDS, describe, write_products
from srcnet_sim.progress import logger
from srcnet_sim.vis.reader import MainTableScan


@dataclass(frozen=True)
class Imaged:
    """What imaging an MS made: the FITS paths written, by kind, and the MS's main-table scan (time range,
    longest baseline, samples: its ObsCore record reuses it rather than reading the table again)."""

    written: dict[str, Path]
    main_scan: MainTableScan


def image_measurement_set(ms_path: Path, params: ImagingParameters, clean: CleanParameters | None,
                          paths: dict[str, Path], object_name: str, previews: Collection[str] = PREVIEW_KINDS,
                          cell_setting: str = "--cellsize-arcsec") -> Imaged:
    """Read the MS at `ms_path` in chunks, make the images and write those named in `paths`.

    paths: {kind: FITS path}, kinds as in imaging.products.write_products ("dirty", "cleaned", ...).
    clean: None for a dirty image only. previews: the kinds that get a PNG beside their FITS file.
    cell_setting: the setting named when the cell leaves long baselines out (params.allow_uv_cut).
    Logs one line per step. Returns the FITS paths written, by kind, and the MS's main-table scan.
    """
    logger.info("read %s", ms_path)
    vis = open_visibilities(ms_path)
    logger.info("image: %d x %d pixels of %.3f arcsec, %s weighting", params.npix, params.npix,
                params.cell_rad / RAD_PER_ARCSEC, params.weighting)
    images = make_images(vis, params, clean)
    if images.sampled_weight_fraction < 1.0:
        keep_rad = 1 / (2 * vis.longest_baseline_wavelengths)
        logger.warning("image: the cell leaves baselines longer than %.0f wavelengths out (%.1f %% of the weight), "
                       "as WSClean does; set %s to a cell <= %.3f arcsec (%.3g rad) to keep them",
                       1 / (2 * params.cell_rad), 100 * (1 - images.sampled_weight_fraction), cell_setting,
                       keep_rad / RAD_PER_ARCSEC, keep_rad)
    if images.clean is not None:
        logger.info("clean: %d iterations in %d major cycles, stopped at %.3g Jy/beam", images.clean.iterations,
                    images.clean.major_cycles, images.clean.threshold_jy)
    written = write_products(images, describe(vis, params, images, object_name), params, paths, previews=previews)
    return Imaged(written, vis.main_scan)
