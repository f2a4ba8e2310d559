"""Observation geometry, beams, visibility prediction and noise.

Threads: see srcnet_sim.run.runtime (numba's workqueue layer, a short OpenBLAS spin), set by the command line.
"""
