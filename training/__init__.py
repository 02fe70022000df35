"""Training, calibration, export and evaluation of the detector model."""
