"""Upload of staged products to Rucio, as the SRCNet ingestor does it."""
