"""Observation geometry, beams, visibility prediction and noise."""
