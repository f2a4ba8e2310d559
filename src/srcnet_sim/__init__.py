"""srcnet-sim: mock SKA-Mid observations as SRCNet-ready data products.

Importing it changes nothing process-wide; the command line sets its thread layers (srcnet_sim.run.runtime).
"""

__version__ = "0.1.0"
