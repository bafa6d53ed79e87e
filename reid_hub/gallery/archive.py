"""A gallery as one archive: export (atomic .tar.gz of database, index and thumbnails) and import."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.atomic import atomic_path
from ..errors import GalleryError
from .store import Gallery, open_gallery


def export_gallery(gallery: Gallery, archive: str | Path) -> Path:
    """Write the whole gallery (database, index, thumbnails) to one .tar.gz archive, atomically."""
    import tarfile

    archive = Path(archive)
    backup = gallery.snapshot(gallery.folder / ".export.sqlite")
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(backup, arcname="gallery.sqlite")
        tar.add(gallery.index_path, arcname="index.faiss")
        if (gallery.folder / "thumbs").is_dir():
            tar.add(gallery.folder / "thumbs", arcname="thumbs")
    backup.unlink()
    return archive


def import_gallery(archive: str | Path, folder: str | Path, model: Any) -> Gallery:
    """Unpack an archive written by `export_gallery` into an empty `folder` and open it for `model`."""
    import tarfile

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise GalleryError(f"{folder} is not empty")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
            if "gallery.sqlite" not in names or any(n.startswith(("/", "..")) or "/../" in n for n in names):
                raise GalleryError(f"{archive} is not a reid-hub gallery archive")
            tar.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise GalleryError(f"cannot read gallery archive {archive}: {exc}") from exc
    return open_gallery(folder, model, create=False)


__all__ = ["export_gallery", "import_gallery"]
