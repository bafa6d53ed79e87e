"""Private, temporary galleries, one per browser session: what a visitor of a public demo may write to.

Each session gets its own gallery folder under a temporary root, limited in images, and removed once idle
for `ttl_s` seconds (checked on every access) or when more than `max_sessions` exist (oldest first).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ConfigError, TooLargeError
from ..gallery import Gallery, open_gallery

log = logging.getLogger(__name__)


class SessionGalleries:
    """Session id -> its own small gallery (bound to `model`), expiring when idle."""

    def __init__(self, model: Any, root: Optional[str | Path] = None, max_images: int = 40, ttl_s: float = 3600,
                 max_sessions: int = 200, clock: Callable[[], float] = time.monotonic) -> None:
        if max_images < 1 or ttl_s <= 0 or max_sessions < 1:
            raise ConfigError("session galleries need max_images >= 1, ttl_s > 0 and max_sessions >= 1")
        self.model, self.max_images, self.ttl_s, self.max_sessions = model, max_images, ttl_s, max_sessions
        self.clock = clock  # seconds; injected by tests so that expiry never depends on how fast the machine is
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="reid-hub-sessions-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, tuple[Gallery, float]] = {}
        self.lock = threading.RLock()

    @staticmethod
    def _key(session: str) -> str:
        if not session:
            raise ConfigError("no browser session: reload the page")
        return hashlib.sha256(session.encode()).hexdigest()[:24]  # never a path a visitor chooses

    def get(self, session: str) -> Gallery:
        """The session's gallery (created empty on first use)."""
        key = self._key(session)
        with self.lock:
            self.expire()
            got = self._open.get(key)
            g = got[0] if got else open_gallery(self.root / key, self.model)
            self._open[key] = (g, self.clock())
            while len(self._open) > self.max_sessions:
                oldest = min(self._open, key=lambda k: self._open[k][1])
                self._drop(oldest)
            return g

    def check_room(self, gallery: Gallery, adding: int = 1) -> None:
        """TooLargeError when the session gallery would exceed its size limit."""
        if len(gallery) + adding > self.max_images:
            raise TooLargeError(f"a session gallery holds at most {self.max_images} images")

    def expire(self) -> int:
        """Remove galleries idle for longer than the TTL; returns how many went."""
        now = self.clock()
        with self.lock:
            old = [k for k, (_, t) in self._open.items() if now - t > self.ttl_s]
            for k in old:
                self._drop(k)
            return len(old)

    def _drop(self, key: str) -> None:
        g, _ = self._open.pop(key)
        g.close()
        shutil.rmtree(self.root / key, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._open)


__all__ = ["SessionGalleries"]
