"""Write the images of one imaging run as FITS files with PNG quick-looks beside them."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from srcnet_sim.imaging.fits import ImageDescription, write_image
from srcnet_sim.imaging.imager import Images, ImagingParameters, Source
from srcnet_sim.imaging.preview import write_preview

PREVIEW_KINDS = ("dirty", "cleaned")  # the images that get a PNG quick-look by default


def describe(vis: Source, params: ImagingParameters, images: Images, object_name: str) -> ImageDescription:
    """Header facts of the images: phase centre, cell, MFS band edges, start time, telescope, beam."""
    low = float(np.min(vis.freq_hz - vis.channel_width_hz / 2))
    high = float(np.max(vis.freq_hz + vis.channel_width_hz / 2))
    return ImageDescription(phase_centre_rad=vis.phase_centre_rad, cell_rad=params.cell_rad, freq_low_hz=low,
                            freq_high_hz=high, start_time_s=vis.time_range_s[0], end_time_s=vis.time_range_s[1],
                            telescope=vis.telescope_name,
                            beam=images.beam, object_name=object_name)


def write_products(images: Images, desc: ImageDescription, params: ImagingParameters, paths: dict[str, Path],
                   previews: Collection[str] = PREVIEW_KINDS) -> dict[str, Path]:
    """Write the images named in `paths` ("dirty", "cleaned", "residual", "model", "psf"), and PNGs of the kinds
    in `previews`.

    Returns the FITS paths written. "cleaned" is the restored image (model (x) beam + residual).
    """
    clean = images.clean
    keywords = {"WSCWEIGH": params.weighting, "SSNVIS": images.n_visibilities, "SSVWSUM": images.weight_sum}
    if np.isfinite(images.expected_noise_jy):
        keywords["SSNOISE"] = (images.expected_noise_jy, "[Jy/beam] thermal rms from the weights")
    if clean is not None:
        keywords.update({"SSNITER": clean.iterations, "SSMAJOR": clean.major_cycles, "SSTHRES": clean.threshold_jy})
    available = {
        "dirty": (images.dirty, "JY/BEAM"),
        "psf": (images.psf, "JY/BEAM"),
        "cleaned": (images.restored, "JY/BEAM"),
        "residual": (clean.residual if clean else None, "JY/BEAM"),
        "model": (clean.model if clean else None, "JY/PIXEL"),
    }
    written = {}
    for kind, path in paths.items():
        image, unit = available[kind]
        if image is None:
            raise ValueError(f"no {kind} image was made")
        written[kind] = write_image(path, image, desc, unit, keywords)
        if kind in previews:
            write_preview(path, path.with_suffix(".png"), title=f"{path.name} ({kind})")
    return written
