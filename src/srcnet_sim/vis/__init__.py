"""MeasurementSet v2 writing and metadata reading with python-casacore."""
