"""What spectral lines add to the simulation: a band of narrow channels with continuum sources, with and without
line sources on top, as a ratio (issue 23: each line touches few channels, so the lines should add little).

The continuum sky is the seeded SYNTHETIC field, the lines SYNTHETIC_HI's galaxies in the same band (no
continuum); both are written to one CSV so that the "continuum + lines" run predicts both. The simulation stage
runs in this process (`simulate` over every time step, the kernels compiled first), the two cases interleaved,
best of --repeat.

    python benchmarks/bench_lines.py [--channels 1000] [--continuum 10000] [--lines 1000] [--times 2]
                                     [--telescope SKA-MID-AA1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH_HZ = 26e3  # 5.5 km/s at 1.4 GHz
START_HZ = 1.37e9


def write_sky(path: Path, continuum, lines) -> Path:
    """One CSV of both skies (deg, Jy, Hz, arcsec, km/s-free SI line columns)."""
    from srcnet_sim.sky.catalogues import C_KM_S

    header = "ra_deg,dec_deg,i_jy,ref_freq_hz,spectral_index,major_arcsec,minor_arcsec,pa_deg," \
             "line_flux_jy_hz,line_freq_hz,w20_kms,line_sigma_kms"
    rows = []
    for sky, has_line in ((continuum, False), (lines, True)):
        if sky is None:
            continue
        per_kms = np.where(has_line, sky.line_freq_hz, 1.0) / C_KM_S
        columns = (np.degrees(sky.ra_rad), np.degrees(sky.dec_rad), sky.stokes_i_jy, sky.ref_freq_hz, sky.spectral_index,
                   np.degrees(sky.major_fwhm_rad) * 3600, np.degrees(sky.minor_fwhm_rad) * 3600,
                   np.degrees(sky.position_angle_rad), sky.line_flux_jy_hz, sky.line_freq_hz,
                   sky.line_w20_hz / per_kms, sky.line_sigma_hz / per_kms)
        rows += [",".join(repr(float(v)) for v in row) for row in zip(*columns)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--continuum", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--times", type=int, default=2)
    parser.add_argument("--telescope", default="SKA-MID-AA1")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from srcnet_sim.run.runtime import configure_process

    configure_process()
    from srcnet_sim.config import load_settings
    from srcnet_sim.run.plan import field_of_view_rad, plan
    from srcnet_sim.simulate.observation import simulate
    from srcnet_sim.sky.synthetic import synthetic_field
    from srcnet_sim.sky.synthetic_hi import synthetic_hi_field

    band = {"START_FREQ_HZ": repr(START_HZ), "END_FREQ_HZ": repr(START_HZ + (args.channels + 0.5) * WIDTH_HZ),
            "FREQ_INC_HZ": repr(WIDTH_HZ), "TELESCOPE": args.telescope, "NUM_TIME_STAMPS": str(args.times)}
    settings = load_settings(environ=band)
    ra0, dec0 = settings.phase_centre_rad
    radius = settings.sky_filter_fwhm * field_of_view_rad(settings)
    continuum = synthetic_field(ra0, dec0, radius, args.continuum, 1)
    lines = synthetic_hi_field(ra0, dec0, radius, args.lines, 1, settings.freq_hz)
    with tempfile.TemporaryDirectory() as tmp:
        observations = {
            name: plan(load_settings(environ={**band, "SKY_MODEL": str(write_sky(Path(tmp) / f"{name}.csv", *skies))}))
            .observation.with_geometry()
            for name, skies in (("continuum", (continuum, None)), ("continuum+lines", (continuum, lines)))}
        for obs in observations.values():
            for _ in simulate(obs, range(1)):  # compile the kernels
                pass
        best = dict.fromkeys(observations, float("inf"))
        for _ in range(args.repeat):
            for name, obs in observations.items():
                start = time.perf_counter()
                for _ in simulate(obs):
                    pass
                best[name] = min(best[name], time.perf_counter() - start)
    touched = np.count_nonzero(lines.line_flux_jy_hz)
    print(json.dumps({"channels": args.channels, "continuum_sources": args.continuum, "line_sources": int(touched),
                      "telescope": args.telescope, "times": args.times, "seconds": best,
                      "ratio_lines_over_continuum": best["continuum+lines"] / best["continuum"]}, indent=1))


if __name__ == "__main__":
    main()
