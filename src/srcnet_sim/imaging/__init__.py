"""Imaging: MS reading, weighting, gridding (ducc0), Cotton-Schwab clean, restoring beam, FITS, previews."""
