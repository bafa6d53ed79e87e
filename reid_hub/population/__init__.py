"""Population: from identified sightings to how many animals there are. Modules: `estimators` (closed-population
abundance: Chapman, Schnabel, Chao's Mh, the naive count, with 95% intervals), `sightings` (the sightings of a
Camtrap DP package or of a discovery folder made from one, and plausible identity assignments drawn from the
identification's uncertainty), `report` (`reid-hub population`: capture histories, estimates with and without that
uncertainty, secr and camtrapR exports, plots).
"""
