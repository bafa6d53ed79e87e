"""Files and folders written whole or not at all: a writer fills a temporary file (or folder) beside the target,
which then replaces the target by rename, so a reader (or a crash) sees the old one or the new one, never a part."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers that add one find it there) that replaces `path`
    when the block ends, and is removed when it raises. Makes the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A new empty folder beside `path` that replaces the folder `path` when the block ends (the old one moved aside,
    the new one renamed in, the old one removed), and is removed when it raises. Makes the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file atomically; returns its path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, **dumps: Any) -> Path:
    """Write `obj` as JSON atomically (`dumps`: json.dumps options); returns its path."""
    return write_text_atomic(path, json.dumps(obj, **dumps))


__all__ = ["atomic_path", "atomic_folder", "write_text_atomic", "write_json_atomic"]
