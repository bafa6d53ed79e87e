"""Files written whole or not at all: a writer fills a temporary file beside the target, which then replaces the
target in one rename, so a reader (or a crash) sees the old file or the new one, never a part."""
from __future__ import annotations

import json
import os
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


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file atomically; returns its path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, **dumps: Any) -> Path:
    """Write `obj` as JSON atomically (`dumps`: json.dumps options); returns its path."""
    return write_text_atomic(path, json.dumps(obj, **dumps))


__all__ = ["atomic_path", "write_text_atomic", "write_json_atomic"]
