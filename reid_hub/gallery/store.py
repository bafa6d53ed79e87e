"""The gallery store: individuals, images and their embeddings in SQLite, kept in step with a FAISS index.

A gallery is one folder: `gallery.sqlite` (individuals, images with their embeddings, sightings,
and the model name/fingerprint/dimension and open-set threshold) and `index.faiss` (a FAISS
IndexIDMap2 keyed by image id). The database is the source of truth: every write is one
transaction, the index is then written to a temp file and renamed, and on open an index that
disagrees with the database is rebuilt from it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import faiss
import numpy as np

from ..data.atomic import atomic_path
from ..errors import ConfigError, DataError, GalleryError, ModelMismatchError
from ..scoring.ranker import Ranker
from .features import SCHEMA as FEATURE_SCHEMA
from .features import FeatureStore
from .index import INDEX_KINDS, base_kind, build_index, faiss_search, index_ids, num_gpus
from .settings import SETTING_NAMES, GallerySettings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS individuals (
    id TEXT PRIMARY KEY, display_name TEXT NOT NULL, species TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT, individual_id TEXT NOT NULL REFERENCES individuals(id),
    source TEXT NOT NULL DEFAULT '', sha256 TEXT NOT NULL DEFAULT '', box TEXT, video TEXT, frame INTEGER,
    time REAL, embedding BLOB NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS images_individual ON images(individual_id);
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, individual_id TEXT NOT NULL REFERENCES individuals(id),
    video TEXT NOT NULL, frames TEXT NOT NULL, boxes TEXT NOT NULL, score REAL, created_at REAL NOT NULL,
    encounter TEXT,
    UNIQUE(video, individual_id));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    proposal_id INTEGER, individual_id TEXT, detail TEXT NOT NULL, previous TEXT);
"""


def vec_hash(e: np.ndarray) -> str:
    """Identity of a unit embedding, stable under re-normalisation round-off."""
    return hashlib.sha256(np.round(e, 5).astype(np.float32).tobytes()).hexdigest()[:16]


@dataclass
class Match:
    """One ranked individual for a query: aggregated score and its best matching images."""

    individual_id: str
    display_name: str
    species: str
    score: float
    images: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SearchResult:
    """Ranked individuals for one query, and whether the best score calls it a new individual."""

    matches: list[Match]
    is_new: bool
    threshold: Optional[float]


class Gallery:
    """A persistent gallery bound to one embedding model (by name, fingerprint and dimension)."""

    def __init__(self, folder: str | Path, model_name: str, model_fingerprint: str, dim: int,
                 create: bool = True) -> None:
        self.folder = Path(folder)
        self._owner_cache: Optional[tuple] = None
        if not create and not (self.folder / "gallery.sqlite").is_file():
            raise GalleryError(f"no gallery at {self.folder}")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.folder / "gallery.sqlite", isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            for statement in (_SCHEMA + ";" + FEATURE_SCHEMA).split(";"):  # executescript would commit outside the tx
                if statement.strip():
                    self.db.execute(statement)
            if "encounter" not in {r[1] for r in self.db.execute("PRAGMA table_info(sightings)")}:
                self.db.execute("ALTER TABLE sightings ADD COLUMN encounter TEXT")  # galleries before encounters
            meta = self._identity()
            if not meta:
                for k, v in {"schema_version": SCHEMA_VERSION, "model_name": model_name,
                             "model_fingerprint": model_fingerprint, "dim": int(dim)}.items():
                    self.db.execute("INSERT INTO meta VALUES (?, ?)", (k, json.dumps(v)))
                meta = self._identity()
        if meta["model_fingerprint"] != model_fingerprint or int(meta["dim"]) != int(dim):
            self.db.close()
            raise ModelMismatchError(
                f"gallery {self.folder} was built with model {meta['model_name']} ({meta['model_fingerprint']}, "
                f"{meta['dim']}-d); the model in use is {model_name} ({model_fingerprint}, {dim}-d)")
        self.model_name, self.fingerprint, self.dim = model_name, model_fingerprint, int(dim)
        self._gpu_cache: Optional[tuple] = None
        #: local features and verified pair scores (their own tables, in this database and its transactions)
        self.features = FeatureStore(self.db, self.transaction)
        self.index = self._load_or_rebuild_index()

    # -- plumbing -----------------------------------------------------------------------
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def transaction(self) -> "Gallery._Tx":
        """One write transaction (`with gallery.transaction() as db:`): committed on exit, rolled back on error."""
        self._owner_cache = None  # any write may change who owns which image
        return Gallery._Tx(self.db)

    def _identity(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    @property
    def settings(self) -> GallerySettings:
        """The gallery's settings as stored now."""
        stored = self._identity()
        return GallerySettings(**{k: v for k, v in stored.items() if k in SETTING_NAMES and v is not None})

    def update_settings(self, **values: Any) -> GallerySettings:
        """Change settings (names of GallerySettings; None restores a default) in one transaction."""
        unknown = sorted(set(values) - SETTING_NAMES)
        if unknown:
            raise ConfigError(f"unknown gallery settings {unknown}; known: {sorted(SETTING_NAMES)}")
        with self.transaction() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM meta WHERE key=?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        return self.settings

    @property
    def threshold(self) -> Optional[float]:
        """The open-set threshold on the best score (None until calibrated or set)."""
        return self.settings.threshold

    @property
    def index_path(self) -> Path:
        """The FAISS index file (written atomically after every change)."""
        return self.folder / "index.faiss"

    @property
    def index_kind(self) -> str:
        """The index the gallery asks for: flat, ivf, hnsw, or auto (flat below `auto_threshold` images, IVF above)."""
        return self.settings.index_kind

    @property
    def on_disk(self) -> bool:
        """Whether the index's inverted lists are memory-mapped from disk instead of loaded (IVF kinds)."""
        return bool(self.settings.index_on_disk)

    # -- local features (gallery.features: the FeatureStore) --------------------------------
    def local_features_for(self, species: str, images: Sequence[Any]) -> Optional[tuple[str, list[bytes]]]:
        """The serialised local features of `images` for enrollment (None when the gallery's verification is off)."""
        settings = self.settings
        if settings.verification is False:
            return None
        name = settings.matcher_for(species)
        m = self.features.matcher(name)
        return name, [m.extract(img).to_bytes() for img in images]

    def images_without_features(self) -> list[tuple[int, str, str]]:
        """(image id, species, matcher) of every image lacking local features of its species' matcher."""
        settings = self.settings
        rows = self.db.execute("SELECT m.id, i.species FROM images m JOIN individuals i ON i.id = m.individual_id "
                               "ORDER BY m.id").fetchall()
        have = self.features.present()
        return [(int(i), sp, settings.matcher_for(sp)) for i, sp in rows if (i, settings.matcher_for(sp)) not in have]

    def image_species(self, image_id: int) -> str:
        """The species of the individual an image belongs to; GalleryError when there is no such image."""
        row = self.db.execute("SELECT i.species FROM images m JOIN individuals i ON i.id = m.individual_id "
                              "WHERE m.id=?", (int(image_id),)).fetchone()
        if row is None:
            raise GalleryError(f"no image {image_id} in {self.folder}")
        return row[0]

    # -- audit --------------------------------------------------------------------------
    def audit_log(self, proposal_id: Optional[int] = None, limit: int = 200) -> list[dict[str, Any]]:
        """Audit rows, newest first (of one review proposal when given)."""
        q = "SELECT id, at, actor, action, proposal_id, individual_id, detail, previous FROM audit"
        args: tuple = ()
        if proposal_id is not None:
            q, args = q + " WHERE proposal_id=?", (int(proposal_id),)
        rows = self.db.execute(q + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
        return [{"id": r[0], "at": r[1], "actor": r[2], "action": r[3], "proposal_id": r[4], "individual_id": r[5],
                 "detail": json.loads(r[6]), "previous": json.loads(r[7]) if r[7] else None} for r in rows]

    @staticmethod
    def record_audit(db: sqlite3.Connection, actor: str, action: str, proposal_id: Optional[int],
                     individual_id: Optional[str], detail: dict[str, Any], previous: Any = None) -> None:
        """One audit row, written inside the caller's transaction `db` (so it commits with the change it records)."""
        db.execute("INSERT INTO audit (at, actor, action, proposal_id, individual_id, detail, previous) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (time.time(), actor, action, proposal_id, individual_id, json.dumps(detail, default=float),
                    json.dumps(previous, default=float) if previous is not None else None))

    def set_index_kind(self, kind: str, auto_threshold: int = 100_000, on_disk: bool = False) -> None:
        """Choose the index kind (and, for IVF kinds, memory-mapped inverted lists) and rebuild the
        index from the database. ivfpq compresses each vector to dim/8 bytes; search re-ranks its
        shortlist with the exact vectors, so scores (and the open-set threshold) stay exact."""
        if kind not in INDEX_KINDS:
            raise ConfigError(f"index kind must be one of {INDEX_KINDS}, got {kind!r}")
        self.update_settings(index_kind=kind, auto_threshold=int(auto_threshold), index_on_disk=bool(on_disk))
        self.index = self._rebuild_index()

    def _base_kind(self, n: int) -> str:
        kind = self.index_kind
        if kind == "auto":
            return "ivf" if n >= int(self.settings.auto_threshold) else "flat"
        return kind

    def _new_index(self, vectors: Optional[np.ndarray] = None) -> faiss.Index:
        return build_index(self._base_kind(0 if vectors is None else len(vectors)), self.dim, vectors)

    def _searcher(self) -> faiss.Index:
        """The index to search: a GPU copy when faiss-gpu sees a GPU and the index is flat, else the index."""
        if self._gpu_cache is not None and self._gpu_cache[0] == self.index.ntotal:
            return self._gpu_cache[1]
        if num_gpus() > 0 and self._current_base_kind() == "flat":
            res = faiss.StandardGpuResources()
            gpu = faiss.index_cpu_to_gpu(res, 0, self.index)
            self._gpu_cache = (self.index.ntotal, gpu, res)
            return gpu
        return self.index

    def _load_or_rebuild_index(self) -> faiss.Index:
        path = self.index_path
        ids = np.array([r[0] for r in self.db.execute("SELECT id FROM images ORDER BY id")], dtype=np.int64)
        if path.is_file():
            try:
                index = self._read_index_file()
                stored = index_ids(index)
                if index.d == self.dim and np.array_equal(np.sort(stored), ids):
                    return index
                log.warning("index of %s disagrees with its database: rebuilding", self.folder)
            except RuntimeError:
                log.warning("index of %s is unreadable: rebuilding", self.folder)
        return self._rebuild_index()

    def _rebuild_index(self) -> faiss.Index:
        rows = self.db.execute("SELECT id, embedding FROM images ORDER BY id").fetchall()
        vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows else None
        index = self._new_index(vecs)
        if rows:
            index.add_with_ids(vecs, np.array([r[0] for r in rows], dtype=np.int64))
        self._write_index(index)
        self._gpu_cache = None
        if self.on_disk and not isinstance(index, faiss.IndexIDMap2):
            return self._read_index_file()
        return index

    def _read_index_file(self) -> faiss.Index:
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if self.on_disk else 0
        return faiss.read_index(str(self.index_path), flags)

    def _writable_index(self) -> faiss.Index:
        """The index to add to: itself, or a RAM copy when its lists are memory-mapped (read-only)."""
        return faiss.read_index(str(self.index_path)) if self.on_disk and self._current_base_kind() != "flat" \
            else self.index

    def _commit_index(self, index: faiss.Index) -> None:
        """Write a changed index and make it current (memory-mapped again when on disk)."""
        self._write_index(index)
        self.index = self._read_index_file() if self.on_disk and not isinstance(index, faiss.IndexIDMap2) else index
        self._gpu_cache = None

    def _write_index(self, index: faiss.Index) -> None:
        with atomic_path(self.index_path) as tmp:
            faiss.write_index(index, str(tmp))

    def check_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """Embeddings as unit (N, dim) float32 rows; ModelMismatchError for another width, DataError for NaN or zero."""
        e = np.asarray(emb, dtype=np.float32)
        if e.ndim == 1:
            e = e[None]
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise ModelMismatchError(f"embeddings must be (N, {self.dim}); got {tuple(e.shape)}")
        if not np.isfinite(e).all():
            raise DataError("embeddings contain NaN or infinity")
        norms = np.linalg.norm(e, axis=1, keepdims=True)
        if (norms == 0).any():
            raise DataError("an embedding is all zeros")
        return np.ascontiguousarray(e / norms)

    @staticmethod
    def open_existing(folder: str | Path) -> "Gallery":
        """Open a gallery by its folder alone, bound to the model identity it stores."""
        return _open_existing(folder)

    def close(self) -> None:
        self.db.close()

    # -- individuals --------------------------------------------------------------------
    def add_individual(self, display_name: str, species: str = "", notes: str = "",
                       individual_id: Optional[str] = None) -> str:
        """Create an individual; returns its persistent id."""
        with self.transaction() as db:
            return self.mint(db, display_name, species, notes, individual_id)

    @staticmethod
    def mint(db: sqlite3.Connection, display_name: str, species: str = "", notes: str = "",
             individual_id: Optional[str] = None) -> str:
        """The one place an individual is made: a new persistent id, inside the caller's transaction `db`."""
        iid = individual_id or f"ind-{uuid.uuid4().hex[:12]}"
        db.execute("INSERT INTO individuals VALUES (?, ?, ?, ?, ?)", (iid, display_name, species, notes, time.time()))
        return iid

    def unenroll(self, db: sqlite3.Connection, image_ids: Sequence[int], minted: Optional[str] = None) -> bool:
        """Undo an enrollment inside the caller's transaction `db`: its images leave the gallery (and the index);
        `minted`, an individual the enrollment created, is deleted with its sightings once it has no image left.
        Returns whether it was deleted."""
        ids = [int(i) for i in image_ids]
        for i in ids:
            db.execute("DELETE FROM images WHERE id=?", (i,))
        gone = minted is not None and not db.execute("SELECT 1 FROM images WHERE individual_id=?",
                                                     (minted,)).fetchone()
        if gone:
            db.execute("DELETE FROM sightings WHERE individual_id=?", (minted,))
            db.execute("DELETE FROM individuals WHERE id=?", (minted,))
        self._remove_from_index(np.array(ids, dtype=np.int64))
        return bool(gone)

    def individuals(self) -> list[dict[str, Any]]:
        """Every individual with its image count."""
        rows = self.db.execute(
            "SELECT i.id, i.display_name, i.species, i.notes, COUNT(m.id) FROM individuals i "
            "LEFT JOIN images m ON m.individual_id = i.id GROUP BY i.id ORDER BY i.created_at, i.id").fetchall()
        return [dict(id=r[0], display_name=r[1], species=r[2], notes=r[3], images=r[4]) for r in rows]

    def _require(self, iid: str) -> None:
        if not self.db.execute("SELECT 1 FROM individuals WHERE id=?", (iid,)).fetchone():
            raise GalleryError(f"no individual {iid!r} in {self.folder}")

    def rename(self, iid: str, display_name: str) -> None:
        self._require(iid)
        with self.transaction() as db:
            db.execute("UPDATE individuals SET display_name=? WHERE id=?", (display_name, iid))

    def enroll(self, iid: str, embeddings: np.ndarray, sources: Optional[Sequence[str]] = None,
               boxes: Optional[Sequence[Any]] = None, video: Optional[str] = None,
               frames: Optional[Sequence[int]] = None, images: Optional[Sequence[Any]] = None,
               thumbnails: Optional[Sequence[Any]] = None) -> list[int]:
        """Add images (embeddings + where they came from) to an individual; returns their image ids.

        `images` (the PIL crops the embeddings came from) are kept as small JPEGs for display
        (thumbs/<image id>.jpg) and, unless the gallery's verification is off, their local features are
        extracted with the gallery's matcher for the individual's species and stored with them.
        `thumbnails` is the former name of `images`."""
        self._require(iid)
        prepared = self.prepare_enrollment(embeddings, sources, boxes, video, frames,
                                           images if images is not None else thumbnails, self.species_of(iid))
        with self.transaction() as db:
            ids = self.write_enrollment(db, iid, prepared)
        self.finish_enrollment(ids, prepared)
        return ids

    def species_of(self, iid: str) -> str:
        """The species of an individual; GalleryError when there is no such individual."""
        row = self.db.execute("SELECT species FROM individuals WHERE id=?", (iid,)).fetchone()
        if row is None:
            raise GalleryError(f"no individual {iid!r} in {self.folder}")
        return row[0]

    def prepare_enrollment(self, embeddings: np.ndarray, sources: Optional[Sequence[str]] = None,
                           boxes: Optional[Sequence[Any]] = None, video: Optional[str] = None,
                           frames: Optional[Sequence[int]] = None, images: Optional[Sequence[Any]] = None,
                           species: str = "") -> dict[str, Any]:
        """Checked embeddings and metadata plus local features (the slow part, done outside any transaction)."""
        e = self.check_embeddings(embeddings)
        n = len(e)
        src = list(sources) if sources is not None else [""] * n
        if len(src) != n:
            raise DataError(f"{n} embeddings but {len(src)} sources")
        if images is not None and len(images) != n:
            raise DataError(f"{n} embeddings but {len(images)} images")
        for name, seq in (("boxes", boxes), ("frames", frames)):
            if seq is not None and len(seq) != n:
                raise DataError(f"{n} embeddings but {len(seq)} {name}")
        local = self.local_features_for(species, images) if images is not None else None
        return {"e": e, "sources": src, "boxes": boxes, "video": video, "frames": frames, "images": images,
                "local": local}

    def write_enrollment(self, db: sqlite3.Connection, iid: str, prepared: dict[str, Any]) -> list[int]:
        """Insert prepared images for `iid` inside the caller's open transaction and add them to the index
        (the transaction rolls back, and the index forgets them, if the index cannot be written)."""
        e, src, boxes, frames = prepared["e"], prepared["sources"], prepared["boxes"], prepared["frames"]
        now = time.time()
        ids = []
        for k in range(len(e)):
            cur = db.execute(
                "INSERT INTO images (individual_id, source, sha256, box, video, frame, time, embedding, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (iid, src[k], vec_hash(e[k]),
                 json.dumps([float(v) for v in boxes[k]]) if boxes is not None and boxes[k] is not None else None,
                 prepared["video"], int(frames[k]) if frames is not None else None, now, e[k].tobytes(), now))
            ids.append(int(cur.lastrowid))
        if prepared["local"] is not None:
            matcher, blobs = prepared["local"]
            self.features.put_many(db, ids, matcher, blobs)
        index = self._writable_index()
        index.add_with_ids(e, np.array(ids, dtype=np.int64))
        try:
            self._commit_index(index)
        except Exception:
            index.remove_ids(np.array(ids, dtype=np.int64))
            raise
        self._owner_cache = None
        return ids

    def finish_enrollment(self, ids: Sequence[int], prepared: dict[str, Any]) -> None:
        """After the commit: switch index kind when `auto` asks for it, write thumbnails."""
        if self.index_kind == "auto" and self._base_kind(len(self)) != self._current_base_kind():
            self.index = self._rebuild_index()
        if prepared["images"] is not None:
            for image_id, img in zip(ids, prepared["images"]):
                self._save_thumbnail(image_id, img)

    def _save_thumbnail(self, image_id: int, img: Any) -> None:
        from ..data.imaging import save_jpeg

        save_jpeg(img, self.folder / "thumbs" / f"{image_id}.jpg", 160)

    def thumbnail_path(self, image_id: int) -> Optional[Path]:
        """Path of an image's stored thumbnail, if it has one."""
        p = self.folder / "thumbs" / f"{int(image_id)}.jpg"
        return p if p.is_file() else None

    def _current_base_kind(self) -> str:
        return base_kind(self.index)

    def _remove_from_index(self, ids: np.ndarray) -> None:
        """Drop ids from the index: in place for flat indexes, by a rebuild from the database otherwise."""
        if self._current_base_kind() == "flat":
            self.index.remove_ids(ids)
            self._commit_index(self.index)
        else:
            self.index = self._rebuild_index()

    def ingest(self, labels: Sequence[str], embeddings: np.ndarray, species: str = "",
               sources: Optional[Sequence[str]] = None) -> int:
        """Bulk-load labelled embeddings in one transaction (one individual per new label, named by it);
        returns the number of images added. For imports of large embedding tables."""
        e = self.check_embeddings(embeddings)
        if len(labels) != len(e):
            raise DataError(f"{len(e)} embeddings but {len(labels)} labels")
        src = list(sources) if sources is not None else [""] * len(e)
        now = time.time()
        with self.transaction() as db:
            known = {name: iid for iid, name in db.execute("SELECT id, display_name FROM individuals")}
            for name in dict.fromkeys(str(x) for x in labels):
                if name not in known:
                    known[name] = self.mint(db, name, species)
            start = (db.execute("SELECT COALESCE(MAX(id), 0) FROM images").fetchone()[0]) + 1
            ids = np.arange(start, start + len(e), dtype=np.int64)
            db.executemany(
                "INSERT INTO images (id, individual_id, source, sha256, embedding, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(int(ids[k]), known[str(labels[k])], src[k], vec_hash(e[k]), e[k].tobytes(), now) for k in range(len(e))])
            if self._current_base_kind() == self._base_kind(len(self) + len(e)) and \
                    self._current_base_kind() in ("flat", "ivfpq"):  # IVF-PQ: codebooks from the first build
                index = self._writable_index()
                index.add_with_ids(e, ids)
                self._commit_index(index)
            else:
                self.index = self._rebuild_index()
        return len(e)

    def delete_images(self, image_ids: Iterable[int]) -> int:
        ids = np.array(sorted(set(int(i) for i in image_ids)), dtype=np.int64)
        with self.transaction() as db:
            removed = sum(db.execute("DELETE FROM images WHERE id=?", (int(i),)).rowcount for i in ids)
            self._remove_from_index(ids)
        return int(removed)

    def delete_individual(self, iid: str) -> None:
        self._require(iid)
        ids = [r[0] for r in self.db.execute("SELECT id FROM images WHERE individual_id=?", (iid,))]
        with self.transaction() as db:
            db.execute("DELETE FROM images WHERE individual_id=?", (iid,))
            db.execute("DELETE FROM sightings WHERE individual_id=?", (iid,))
            db.execute("DELETE FROM individuals WHERE id=?", (iid,))
            self._remove_from_index(np.array(ids, dtype=np.int64))

    def merge(self, keep: str, absorb: str, actor: str = "local") -> None:
        """Move every image and sighting of `absorb` onto `keep`, then delete `absorb` (audited)."""
        self._require(keep)
        self._require(absorb)
        if keep == absorb:
            raise GalleryError("cannot merge an individual with itself")
        moved = [r[0] for r in self.db.execute("SELECT id FROM images WHERE individual_id=?", (absorb,))]
        name = self.db.execute("SELECT display_name, species FROM individuals WHERE id=?", (absorb,)).fetchone()
        with self.transaction() as db:
            self.record_audit(db, actor, "merge", None, keep, {"absorbed": absorb, "images": moved},
                   {"individual": absorb, "display_name": name[0], "species": name[1]})
            db.execute("UPDATE images SET individual_id=? WHERE individual_id=?", (keep, absorb))
            db.execute("UPDATE OR REPLACE sightings SET individual_id=? WHERE individual_id=?", (keep, absorb))
            db.execute("DELETE FROM individuals WHERE id=?", (absorb,))

    def split(self, iid: str, image_ids: Sequence[int], display_name: str, actor: str = "local") -> str:
        """Move the given images of `iid` to a new individual; returns its id (audited)."""
        self._require(iid)
        owned = {r[0] for r in self.db.execute("SELECT id FROM images WHERE individual_id=?", (iid,))}
        if not set(image_ids) <= owned or not image_ids:
            raise GalleryError(f"images {sorted(set(image_ids) - owned)} do not belong to {iid}")
        species = self.db.execute("SELECT species FROM individuals WHERE id=?", (iid,)).fetchone()[0]
        with self.transaction() as db:
            new = self.mint(db, display_name, species)
            db.executemany("UPDATE images SET individual_id=? WHERE id=?", [(new, int(i)) for i in image_ids])
            self.record_audit(db, actor, "split", None, new, {"from": iid, "images": [int(i) for i in image_ids]},
                   {"individual": iid})
        return new

    # -- search -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, embeddings: np.ndarray, k: int = 5, images_per_match: int = 3,
               species: Optional[str] = None) -> list[SearchResult]:
        """Ranked individuals per query: an individual's score is its best image score. With `species`,
        only that species' images are searched (filtered inside the index search)."""
        if len(self) == 0:
            raise GalleryError(f"gallery {self.folder} is empty: enroll individuals first")
        q = self.check_embeddings(embeddings)
        allowed, pool = self.species_pool(species)
        _, _, inds = self.owners()
        ranker = Ranker(lambda x, depth: self.nearest(x, depth, allowed), self.owner_positions)
        cands = ranker.shortlist(q, min(pool, max(50, k * images_per_match * 4)))
        plans = cands.best_per_owner(len(q), k, images_per_match)
        rows = self._image_rows(np.unique(cands.image[np.concatenate([rs for plan in plans for _, rs in plan] or
                                                                     [np.zeros(0, np.int64)])]))
        thr = self.threshold
        out = []
        for plan in plans:
            ranked = []
            for o, rs in plan:
                m = Match(inds[o][0], inds[o][1], inds[o][2], float(cands.global_score[rs[0]]))
                m.images = [{"image_id": int(i), "score": float(sc), "source": rows[i][2],
                             "box": json.loads(rows[i][3]) if rows[i][3] else None, "video": rows[i][4],
                             "frame": rows[i][5]} for sc, i in zip(cands.global_score[rs], cands.image[rs].tolist())
                            if i in rows]
                ranked.append(m)
            is_new = bool(thr is not None and (not ranked or ranked[0].score < thr))
            out.append(SearchResult(ranked, is_new, thr))
        return out

    def species_pool(self, species: Optional[str]) -> tuple[Optional[np.ndarray], int]:
        """The image ids a search may return (None: all) and how many there are; GalleryError when none."""
        allowed = self.species_image_ids(species) if species else None
        if allowed is not None and not len(allowed):
            raise GalleryError(f"gallery {self.folder} has no images of species {species!r}")
        return allowed, len(self) if allowed is None else len(allowed)

    def nearest(self, q: np.ndarray, depth: int, allowed: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The `depth` best images per query (only `allowed` ids when given), with exact scores."""
        searcher = self._searcher() if allowed is None else self.index  # GPU copies take no id selector
        scores, ids = faiss_search(searcher, q, depth, ids=allowed)
        if self._current_base_kind() == "ivfpq":
            scores, ids = self._rerank_exact(q, ids)
        return scores, ids

    def _rerank_exact(self, q: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of each query's shortlist (vectors from the database), best first."""
        vec = self.embeddings_by_id(np.unique(ids[ids >= 0]))
        scores = np.full(ids.shape, -np.inf, dtype=np.float32)
        for r in range(len(ids)):
            for c, i in enumerate(ids[r]):
                if int(i) in vec:
                    scores[r, c] = float(q[r] @ vec[int(i)])
        order = np.argsort(-scores, axis=1)
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def individual_named(self, display_name: str, species: Optional[str] = None) -> Optional[str]:
        """The id of an individual with this display name (of `species` when given; the first created), or None."""
        sql, args = "SELECT id FROM individuals WHERE display_name=?", [display_name]
        if species is not None:
            sql, args = sql + " AND species=?", [*args, species]
        row = self.db.execute(sql + " ORDER BY created_at, id", args).fetchone()
        return row[0] if row else None

    def image_records(self) -> list[dict[str, Any]]:
        """Every image with its individual: image id, source, video, frame, created_at, individual id, name, species
        (in image order)."""
        rows = self.db.execute(
            "SELECT m.id, m.source, m.video, m.frame, m.created_at, i.id, i.display_name, i.species "
            "FROM images m JOIN individuals i ON i.id = m.individual_id ORDER BY m.id").fetchall()
        keys = ("image_id", "source", "video", "frame", "created_at", "individual_id", "display_name", "species")
        return [dict(zip(keys, r)) for r in rows]

    def sighting_records(self) -> list[dict[str, Any]]:
        """Every sighting (an individual in a video) with its individual's name and species, by video and name."""
        rows = self.db.execute(
            "SELECT s.individual_id, i.display_name, i.species, s.video, s.frames, s.score, s.created_at "
            "FROM sightings s JOIN individuals i ON i.id = s.individual_id ORDER BY s.video, i.display_name").fetchall()
        keys = ("individual_id", "display_name", "species", "video", "frames", "score", "created_at")
        return [{**dict(zip(keys, r)), "frames": json.loads(r[4] or "[]")} for r in rows]

    def snapshot(self, path: str | Path) -> Path:
        """A consistent copy of the gallery's database at `path` (SQLite's online backup)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dst = sqlite3.connect(path)
        with dst:
            self.db.backup(dst)
        dst.close()
        return Path(path)

    def image_hashes(self, iid: str) -> set[str]:
        """`vec_hash` of every embedding of an individual (to skip what is already enrolled)."""
        return {h for (h,) in self.db.execute("SELECT sha256 FROM images WHERE individual_id=?", (iid,))}

    def record_sighting(self, iid: str, video: str, frames: Sequence[int], boxes: Sequence[Any],
                        score: Optional[float], encounter: Optional[str] = None) -> None:
        """Where an individual was seen in one video (replacing an earlier sighting of it there)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO sightings (individual_id, video, frames, boxes, score, created_at, "
                       "encounter) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (iid, video, json.dumps([int(f) for f in frames]),
                        json.dumps([list(map(float, b)) for b in boxes]), score, time.time(), encounter))

    def encounter_embeddings(self, encounter: str, exclude_video: Optional[str] = None) -> list[tuple[str, np.ndarray]]:
        """(individual id, embedding) of every image taken in the videos of one encounter (but `exclude_video`)."""
        rows = self.db.execute(
            "SELECT m.individual_id, m.embedding FROM images m JOIN sightings s ON s.individual_id = m.individual_id "
            "AND s.video = m.video WHERE s.encounter=? AND s.video<>?", (encounter, exclude_video or "")).fetchall()
        return [(iid, np.frombuffer(blob, dtype=np.float32)) for iid, blob in rows]

    def labelled_images(self, species: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
        """Image ids and their individuals' ids (of one `species` when given), by image id; no embeddings are read."""
        sql = "SELECT m.id, m.individual_id FROM images m JOIN individuals i ON i.id = m.individual_id"
        rows = self.db.execute(sql + (" WHERE i.species=?" if species is not None else "") + " ORDER BY m.id",
                               (species,) if species is not None else ()).fetchall()
        return np.array([r[0] for r in rows], np.int64), np.array([str(r[1]) for r in rows])

    def embeddings_by_id(self, image_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored unit embedding of each of these images (ids not in the gallery are absent)."""
        wanted = [int(i) for i in image_ids]
        vec: dict[int, np.ndarray] = {}
        for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
            chunk = wanted[start:start + 900]
            vec.update((r[0], np.frombuffer(r[1], dtype=np.float32)) for r in self.db.execute(
                f"SELECT id, embedding FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return vec

    def owner_positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which `ids` are images of the gallery (not -1 padding, not deleted), and the position in `owners()`'s
        individuals of each one kept."""
        img_ids, owner, _ = self.owners()
        if not len(img_ids):
            return np.zeros(len(ids), bool), np.zeros(0, np.int64)
        pos = np.clip(np.searchsorted(img_ids, ids), 0, len(img_ids) - 1)
        keep = (ids >= 0) & (img_ids[pos] == ids)
        return keep, owner[pos[keep]]

    def owners(self) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str, str]]]:
        """Sorted image ids, the position of each one's individual, and the individuals (id, name,
        species): an in-memory map, rebuilt after any write, so that a search reads from SQLite only
        the images it returns."""
        if self._owner_cache is None:
            inds = [tuple(r) for r in self.db.execute("SELECT id, display_name, species FROM individuals")]
            at = {r[0]: j for j, r in enumerate(inds)}
            rows = self.db.execute("SELECT id, individual_id FROM images ORDER BY id").fetchall()
            self._owner_cache = (np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                                 np.fromiter((at[r[1]] for r in rows), np.int64, len(rows)), inds)
        return self._owner_cache

    def species_image_ids(self, species: str) -> np.ndarray:
        """Image ids of every individual of `species` (sorted)."""
        img_ids, owner, inds = self.owners()
        of_species = np.array([r[2] == species for r in inds], bool)
        return img_ids[of_species[owner]] if len(img_ids) else img_ids

    def _image_rows(self, ids: np.ndarray) -> dict[int, tuple]:
        rows: dict[int, tuple] = {}
        id_list = [int(i) for i in ids]
        for start in range(0, len(id_list), 900):  # SQLite's bound-parameter limit
            chunk = id_list[start:start + 900]
            rows.update((r[0], r) for r in self.db.execute(
                "SELECT m.id, m.individual_id, m.source, m.box, m.video, m.frame, i.display_name, i.species "
                f"FROM images m JOIN individuals i ON i.id = m.individual_id WHERE m.id IN ({','.join('?' * len(chunk))})",
                chunk))
        return rows

    # -- open set -----------------------------------------------------------------------
    def set_threshold(self, value: float) -> None:
        if not -1.0 <= value <= 1.0:
            raise ConfigError("a cosine threshold lies in [-1, 1]")
        self.update_settings(threshold=float(value))


def _open_existing(folder: str | Path) -> "Gallery":
    """Open a gallery by its folder alone, with the model identity it stores (review, export: no embedding)."""
    path = Path(folder) / "gallery.sqlite"
    if not path.is_file():
        raise GalleryError(f"no gallery at {folder}")
    db = sqlite3.connect(path)
    try:
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    finally:
        db.close()
    return Gallery(folder, meta["model_name"], meta["model_fingerprint"], int(meta["dim"]), create=False)


def open_gallery(folder: str | Path, model: Any, create: bool = True) -> Gallery:
    """Open (or create) the gallery at `folder` for a ReIDModel."""
    return Gallery(folder, model.config.name, model.fingerprint(), model.embedding_dim, create=create)


__all__ = ["Gallery", "GalleryError", "GallerySettings", "Match", "SearchResult", "open_gallery", "vec_hash"]
