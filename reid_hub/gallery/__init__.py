"""Galleries of known individuals: a FAISS index of embeddings plus a SQLite database (one folder).

Modules: `store` (the Gallery: individuals, images, sightings, the audit trail, the index kept in step inside every
write; minting an individual and undoing an enrollment are its operations), with `features` (its local features and
verified pair scores) and `settings` (what it is configured to do) as parts of it; `proposals` (the review proposals' table and all its SQL), `index` (FAISS kinds and search),
`identification` (the gallery's coarse-to-fine ranker, identify, evidence, the decision policy applied),
`recalibration` (the open-set threshold, P(same individual) and the decision policy fitted on the gallery's own
individuals), `clip_assignment` (clusters of a clip -> persistent individuals), `review` (the review workflow:
propose, decide, undo, labelled pairs), `archive` (export / import), `camtrap` (Camtrap DP and sightings exports), `package_identification` (a
Camtrap DP package's animals identified in the gallery and the package written back).
Only `store` and `proposals` run SQL; every other module takes a Gallery and uses its public methods; the store
imports none of them.
"""
from .archive import export_gallery, import_gallery
from .clip_assignment import ClusterAssignment, assign_clip
from .identification import Identification, VerifiedMatch, evidence, identify, set_matcher
from .recalibration import recalibrate
from .settings import GallerySettings
from .store import Gallery, GalleryError, Match, SearchResult, open_gallery

__all__ = ["Gallery", "GallerySettings", "GalleryError", "Match", "SearchResult", "ClusterAssignment", "assign_clip", "open_gallery",
           "export_gallery", "import_gallery", "identify", "evidence", "recalibrate", "set_matcher", "Identification",
           "VerifiedMatch"]
