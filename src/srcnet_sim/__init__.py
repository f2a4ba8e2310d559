"""srcnet-sim: mock SKA-Mid observations as SRCNet-ready data products."""

__version__ = "0.1.0"
