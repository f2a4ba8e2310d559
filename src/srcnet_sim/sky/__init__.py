"""Sky models: the SkyModel container, catalogue readers and the synthetic field."""

from srcnet_sim.sky.model import SkyModel

__all__ = ["SkyModel"]
