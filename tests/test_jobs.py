"""Long work as jobs: state, progress and result in SQLite; 202 and polling over HTTP; a server killed with
SIGKILL mid-job reports the job as interrupted after its restart, never loses it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from reid_hub.app.jobs import DONE, FAILED, INTERRUPTED, JobStore
from reid_hub.errors import DataError

pytest.importorskip("fastapi")


def test_a_job_reports_progress_then_its_result_or_its_typed_error(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    gate = threading.Event()
    seen = []

    def work(progress):
        progress(0.5, "half way")
        seen.append(store.get(job)["progress"])
        gate.wait(10)
        return {"answer": 42}

    job = store.submit("demo", work)
    time.sleep(0.3)
    running = store.get(job)
    assert running["state"] == "running" and running["progress"] == 0.5 and running["message"] == "half way"
    assert store.wait(job, 0.1)["state"] == "running"  # still running after a short wait
    gate.set()
    done = store.wait(job, 10)
    assert done["state"] == DONE and done["result"] == {"answer": 42} and done["progress"] == 1.0

    def bad(progress):
        raise DataError("no such column: frame")

    failed = store.wait(store.submit("demo", bad), 10)
    assert failed["state"] == FAILED and failed["error"] == {"error": "DataError", "detail": "no such column: frame"}
    assert [j["job_id"] for j in store.recent()] == [failed["job_id"], job] and "result" not in store.recent()[0]
    assert store.get("0000") is None
    store.close()


def test_a_job_of_a_killed_server_is_reported_interrupted_after_restart(tmp_path):
    db = tmp_path / "jobs.sqlite"
    script = textwrap.dedent(f"""
        import sys, time
        from reid_hub.app.jobs import JobStore
        store = JobStore({str(db)!r})
        job = store.submit("recalibrate", lambda progress: (progress(0.3, "working"), time.sleep(60)))
        while store.get(job)["progress"] < 0.3:
            time.sleep(0.05)
        print(job, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    job = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    store = JobStore(db)
    got = store.get(job)
    assert got["state"] == INTERRUPTED and got["progress"] == 0.3 and "stopped" in got["message"]
    store.close()


def test_long_requests_answer_202_and_the_job_is_polled_to_its_result(tmp_path):
    import numpy as np
    from test_service import _serve

    from reid_hub import create_model, save_pretrained
    from reid_hub.app.service import ServiceConfig

    from coats import coat, photo

    def png(img) -> bytes:
        import io

        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    model_dir = save_pretrained(create_model("tiny-test"), tmp_path / "model")
    cfg = ServiceConfig(model=str(model_dir), gallery_dir=str(tmp_path / "g"), token="s3cret", heavy_per_minute=0)
    auth = {"Authorization": "Bearer s3cret"}
    with _serve(cfg) as base:
        c = httpx.Client(base_url=base, timeout=60, headers=auth)
        for k in range(3):
            iid = c.post("/individuals", json={"display_name": f"z{k}", "species": "zebra"}).json()["individual_id"]
            for j in range(3):
                assert c.post(f"/individuals/{iid}/images", files={"file": ("a.png", png(photo(coat(7 + k), j)),
                                                                            "image/png")}).status_code == 201
        r = c.post("/recalibrate", params={"wait": 0}, data={"kind": "isotonic"})
        assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['job_id']}"
        assert r.json()["kind"] == "recalibrate" and r.json()["state"] in ("queued", "running")
        for _ in range(600):
            job = c.get(r.headers["location"]).json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert job["state"] == DONE and "zebra" in job["result"] and 0 <= job["progress"] <= 1
        sync = c.post("/recalibrate", params={"wait": 120}, data={"kind": "isotonic"})  # waits: the result itself
        assert sync.status_code == 200 and "zebra" in sync.json()
        assert c.get("/jobs/0123abcd").status_code == 404 and c.get("/jobs/../etc").status_code in (404, 422)
        assert c.get("/recalibrate").status_code == 405
        assert c.post("/recalibrate", params={"wait": 601}).status_code == 422  # bounded in the schema
        assert [j["kind"] for j in c.get("/jobs").json()][:2] == ["recalibrate", "recalibrate"]
        assert np.isfinite(job["updated"]) and job["updated"] >= job["created"]


def test_a_failed_job_answers_with_the_status_its_error_class_has_everywhere():
    from reid_hub.app.service import http_status

    assert http_status("ImageError") == 415 and http_status("TooLargeError") == 413  # nearest listed base decides
    assert http_status("DataError") == 422 and http_status("CheckpointError") == 400  # via ReidHubError
    assert http_status("InternalError") == 500 and http_status("ValueError") == 500 and http_status("os") == 500
