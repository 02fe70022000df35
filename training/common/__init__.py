"""What both model generations use: data splits and sources, the crop cache, augmentation and
pseudo-fakes, metrics, temperature calibration, the assessment's bands, card templating, and
`dfd-train evaluate` (any model through the serving path). Imports neither generation."""
