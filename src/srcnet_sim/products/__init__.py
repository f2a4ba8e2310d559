"""SRCNet products: Rucio naming, ObsCore metadata, `.meta` sidecars, atomic staging, SRC notifications."""
