"""The predictor contract: every registered strategy (CPU; GPU with NumPy in place of CuPy and its kernel in
numba's CUDA simulator) yields the same time steps, shapes and dtypes from `simulate`, and visibilities equal
to the analytic answer for point sources, V_pq = S B_p B_q exp(+2 pi i f (u l + v m + w (n - 1)) / c)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]  # tests/: conftest and helpers
CONTRACT = r"""
import numpy as np
from conftest import write_csv_sky
from srcnet_sim.config import load_settings
from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.run.plan import plan
from srcnet_sim.instrument.beams import dish_types
from srcnet_sim.simulate.observation import _StepInputs, simulate
from srcnet_sim.simulate.predict_gpu import GpuPredictor
from srcnet_sim.simulate.predictors import PREDICTORS, CpuStrategy, GpuStrategy
import pathlib
import sys

# Every registered strategy must be here: a new one fails this test until it meets the contract.
STRATEGIES = {"cpu": CpuStrategy, "gpu": lambda: GpuStrategy(GpuPredictor(np))}
assert set(STRATEGIES) == set(PREDICTORS), (set(PREDICTORS), set(STRATEGIES))

env = {"TELESCOPE": "SKA-MID-AA0.5", "NUM_TIME_STAMPS": "5", "SMEARING": "off", "NOISE": "off",
       "PRECISION": "double", "START_FREQ_HZ": "1.0e9", "END_FREQ_HZ": "1.3e9", "FREQ_INC_HZ": "1.0e8"}
ra, dec = load_settings(environ=env).phase_centre_rad
# the third source has a spectral line too, 8,000 km/s wide across the 1.1 and 1.2 GHz channels
sky = write_csv_sky(pathlib.Path(sys.argv[1]) / "sky.csv",
                    [(np.degrees(ra), np.degrees(dec), 1.0, 0.0, 0.0, 0.0),
                     (np.degrees(ra) + 0.05, np.degrees(dec) - 0.03, 0.5, 0.0, 0.0, 0.0),
                     (np.degrees(ra) - 0.02, np.degrees(dec) + 0.04, 2.0, 5e7, 1.15e9, 8000.0)],
                    header="ra_deg,dec_deg,i_jy,line_flux_jy_hz,line_freq_hz,w20_kms")
obs = plan(load_settings(environ={**env, "SKY_MODEL": str(sky)})).observation.with_geometry()
terms = obs.source_terms()
assert np.ptp(terms.stokes[:, 0, 2]) > 0.1  # the line: Stokes I of source 3 differs between channels
ant1, ant2 = obs.baselines
_, dish_type = dish_types(obs.beam, obs.telescope.diameters_m)

def analytic(uvw_m):
    # (n_bl, n_chan) Stokes I visibilities: sum over sources of S B_p B_q exp(+2 pi i f tau_pq)
    tau = uvw_m @ terms.lmn.T / SPEED_OF_LIGHT_M_S  # (n_bl, n_src) s
    b = terms.beams[dish_type[ant1]] * terms.beams[dish_type[ant2]]  # (n_bl, n_chan, n_src)
    phase = np.exp(2j * np.pi * obs.freq_hz[None, :, None] * tau[:, None, :])
    return np.sum(terms.stokes[None, :, 0, :] * b * phase, axis=-1)

for name, make in STRATEGIES.items():
    strategy = make()
    assert strategy.name == name
    assert strategy.steps_per_call(len(obs.times_s), len(ant1), len(obs.freq_hz), obs.dtype) >= 1
    steps = list(simulate(obs, range(1, 4), predictor=strategy))
    assert [s.index for s in steps] == [1, 2, 3], (name, [s.index for s in steps])
    for step in steps:
        assert step.vis.shape == (len(ant1), len(obs.freq_hz), 4) and step.vis.dtype == np.complex128, name
        want = analytic(step.uvw_m)
        scale = np.abs(want).max()
        for corr in (0, 3):  # XX = YY = I for unpolarised sources
            assert np.abs(step.vis[..., corr] - want).max() <= 1e-9 * scale, (name, corr)
        assert np.abs(step.vis[..., 1:3]).max() <= 1e-9 * scale, name
    sub = list(simulate(obs, range(1, 4), slice(1, 2), predictor=strategy))
    for a, b in zip(sub, steps):
        assert np.abs(a.vis[:, 0] - b.vis[:, 1]).max() <= 1e-12 * np.abs(b.vis).max(), name
    pending = strategy.submit(_StepInputs.of(obs, slice(None)).pieces[0], obs.dish_uvw_m[:2], None)
    assert pending.result().shape == (2, len(ant1), len(obs.freq_hz), 4), name
print("contract holds for", ", ".join(STRATEGIES))
"""


def test_every_registered_predictor_meets_the_contract(tmp_path: Path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", CONTRACT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "contract holds for cpu, gpu" in proc.stdout
