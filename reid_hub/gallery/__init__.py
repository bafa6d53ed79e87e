"""Galleries of known individuals: a FAISS index of embeddings plus a SQLite database (one folder).

Modules: `store` (the Gallery: individuals, images, local features, settings, audit rows, the index kept in step),
`index` (FAISS kinds and search), `identification` (the gallery's coarse-to-fine ranker, identify, evidence),
`recalibration` (the open-set threshold and P(same individual) fitted on the gallery's own individuals), `clips`
(clusters of a clip -> persistent individuals), `review` (proposals, decisions, audit), `archive` (export / import),
`camtrap` (Camtrap DP and sightings exports). Every helper module takes a Gallery and uses its public methods; the
store imports none of them.
"""
from .archive import export_gallery, import_gallery
from .clip_assignment import ClusterAssignment, assign_clip
from .identification import Identification, VerifiedMatch, evidence, identify, set_matcher
from .recalibration import recalibrate
from .store import Gallery, GalleryError, GallerySettings, Match, SearchResult, open_gallery

__all__ = ["Gallery", "GallerySettings", "GalleryError", "Match", "SearchResult", "ClusterAssignment", "assign_clip", "open_gallery",
           "export_gallery", "import_gallery", "identify", "evidence", "recalibrate", "set_matcher", "Identification",
           "VerifiedMatch"]
