"""Scoring pairs and ranking candidates: `matchers/` (local-feature matchers), `calibration` (open-set thresholds,
score -> probability maps, ECE), `fusion` (global and local scores fused into P(same individual)),
`decisions` (the one decision policy: P(new), accept / new at a stated precision, else review; the clip rule)
and `ranker` (the one coarse-to-fine Ranker that gallery search, identification, clip assignment and evaluation all
use).
"""
