"""Long work of the service as jobs: run by one worker thread, their state, progress and result kept in SQLite,
so that a restarted server reports the jobs it was running as interrupted instead of losing them."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ReidHubError

log = logging.getLogger(__name__)

#: job states; `interrupted`: the server stopped while the job was queued or running
QUEUED, RUNNING, DONE, FAILED, INTERRUPTED = "queued", "running", "done", "failed", "interrupted"
FINISHED = (DONE, FAILED, INTERRUPTED)

Progress = Callable[[float, str], None]
JobFn = Callable[[Progress], dict]

_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '', result TEXT, error TEXT, created REAL NOT NULL, updated REAL NOT NULL)"""


_COLUMNS = "id, kind, state, progress, message, error, created, updated"


def _job(row: tuple) -> dict[str, Any]:
    """A job as the API shows it, from a row of _COLUMNS."""
    return {"job_id": row[0], "kind": row[1], "state": row[2], "progress": round(row[3], 4), "message": row[4],
            "error": json.loads(row[5]) if row[5] else None, "created": row[6], "updated": row[7]}


class JobStore:
    """Jobs of one service: `submit` queues work, `get` / `wait` read its state; one worker runs them in order."""

    def __init__(self, path: str | Path, workers: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(_SCHEMA)
        with self._lock:
            n = self.db.execute("UPDATE jobs SET state=?, message=?, updated=? WHERE state IN (?, ?)",
                                (INTERRUPTED, "the server stopped before the job finished", time.time(),
                                 QUEUED, RUNNING)).rowcount
        if n:
            log.warning("%d job(s) of an earlier run were interrupted", n)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reid-hub-job")

    def submit(self, kind: str, fn: JobFn) -> str:
        """Queue `fn(progress)`; its returned dict becomes the job's result. Returns the job id."""
        job_id = uuid.uuid4().hex[:16]
        now = time.time()
        with self._lock:
            self.db.execute("INSERT INTO jobs (id, kind, state, created, updated) VALUES (?, ?, ?, ?, ?)",
                            (job_id, kind, QUEUED, now, now))
        self._pool.submit(self._run, job_id, fn)
        return job_id

    def _set(self, job_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._lock:
            self.db.execute(f"UPDATE jobs SET {cols}, updated=? WHERE id=?", (*fields.values(), time.time(), job_id))
            if fields.get("state") in FINISHED:
                self._done.notify_all()

    def _run(self, job_id: str, fn: JobFn) -> None:
        self._set(job_id, state=RUNNING)
        last = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or fraction >= 1.0:  # at most five writes a second
                last[0] = now
                self._set(job_id, progress=float(min(max(fraction, 0.0), 1.0)), message=message[:500])

        try:
            result = fn(progress)
            self._set(job_id, state=DONE, progress=1.0, result=json.dumps(result, default=str))
        except ReidHubError as exc:
            self._set(job_id, state=FAILED, error=json.dumps({"error": type(exc).__name__, "detail": str(exc)}))
        except Exception as exc:  # a bug: recorded on the job, logged with its traceback
            log.exception("job %s failed", job_id)
            self._set(job_id, state=FAILED, error=json.dumps({"error": "InternalError", "detail": type(exc).__name__}))

    def get(self, job_id: str) -> Optional[dict[str, Any]]:
        """The job's id, kind, state, progress, message, created/updated times, and its result or error."""
        with self._lock:
            row = self.db.execute(f"SELECT {_COLUMNS}, result FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None
        return {**_job(row), "result": json.loads(row[-1]) if row[-1] else None}

    def wait(self, job_id: str, timeout: float) -> Optional[dict[str, Any]]:
        """The job once it has finished, or as it is after `timeout` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            while True:
                row = self.db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
                left = deadline - time.monotonic()
                if row is None or row[0] in FINISHED or left <= 0:
                    break
                self._done.wait(timeout=min(left, 1.0))
        return self.get(job_id)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest jobs, without their results."""
        with self._lock:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY created DESC LIMIT ?",
                                   (int(limit),)).fetchall()
        return [_job(r) for r in rows]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.db.close()


__all__ = ["JobStore", "QUEUED", "RUNNING", "DONE", "FAILED", "INTERRUPTED", "Progress"]
