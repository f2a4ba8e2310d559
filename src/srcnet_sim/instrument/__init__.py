"""Telescope descriptions: dish positions, dish diameters and the site."""

from srcnet_sim.instrument.array import Site, Telescope, load_telescope, KNOWN_TELESCOPES

__all__ = ["Site", "Telescope", "load_telescope", "KNOWN_TELESCOPES"]
