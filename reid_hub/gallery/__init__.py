"""Galleries of known individuals: a FAISS index of embeddings plus a SQLite database (one folder).

Modules: `store` (individuals, images, the index kept in step), `index` (FAISS kinds and search),
`verification` (local features of enrolled images, coarse-to-fine identification, evidence),
`calibration` (P(same individual) fitted on the gallery's own individuals), `assignment` (clips ->
persistent individuals), `archive` (export / import).
"""
from .archive import export_gallery, import_gallery
from .assignment import ClusterAssignment, assign_clip
from .calibration import recalibrate
from .store import Gallery, GalleryError, Match, SearchResult, open_gallery
from .verification import Identification, VerifiedMatch, evidence, identify, set_matcher

__all__ = ["Gallery", "GalleryError", "Match", "SearchResult", "ClusterAssignment", "assign_clip", "open_gallery",
           "export_gallery", "import_gallery", "identify", "evidence", "recalibrate", "set_matcher", "Identification",
           "VerifiedMatch"]
