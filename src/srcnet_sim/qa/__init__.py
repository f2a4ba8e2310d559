"""Quality assessment of images against the truth: PyBDSF source finding, cross-match, statistics, plots."""
