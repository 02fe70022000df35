"""Research and reports on the detector: robustness, cue probes, contact sheets, card tables.

May import training and detector; nothing in training, detector, worker or web imports it.
"""
