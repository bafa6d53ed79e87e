"""Scoring pairs and ranking candidates: `matchers/` (local-feature matchers), `calibration` (open-set thresholds,
score -> probability maps, ECE), `fusion` (global and local scores fused into P(same individual), P(known)),
`decisions` (accept, review or new) and `ranker` (the one coarse-to-fine Ranker that gallery search,
identification, clip assignment and evaluation all use).
"""
