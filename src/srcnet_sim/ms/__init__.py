"""MeasurementSet v2 writing with python-casacore."""
