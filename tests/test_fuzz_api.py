"""Schemathesis against a started server (issue 25): every operation of the OpenAPI schema, generated and
boundary inputs with a fixed seed and example budget; no response may be a 5xx and every response must conform
to the schema. Schemathesis lives in its own venv (.venv-fuzz, made by `make install`): its pyrate-limiter
pin conflicts with wildlife-datasets' in the main one."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("gradio")

from conftest import make_identity_images  # noqa: E402
from test_service import _serve  # noqa: E402

from reid_hub import create_model, save_pretrained
from reid_hub.discovery.run import DiscoverRequest, discover

from coats import coat, photo  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ST = Path(os.environ.get("REID_HUB_SCHEMATHESIS", REPO / ".venv-fuzz" / "bin" / "st"))
#: examples per operation and phase: about 1,500 requests in all, a minute or two on 2 cores
MAX_EXAMPLES = 20


def _png(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path):
    if not ST.is_file():
        pytest.skip(f"Schemathesis is not installed at {ST} (make install puts it in .venv-fuzz)")
    from reid_hub.app.service import ServiceConfig

    model_dir = save_pretrained(create_model("tiny-test"), tmp_path / "model")
    data = make_identity_images(tmp_path / "birds", "bird", 6, 4, seed=3)
    found = tmp_path / "found"
    discover(DiscoverRequest(str(data / "metadata.csv"), str(found), model=str(model_dir)))
    cfg = ServiceConfig(model=str(model_dir), gallery_dir=str(tmp_path / "gallery"), token="s3cret",
                        max_upload_bytes=300_000, max_pixels=1_000_000, heavy_per_minute=0,
                        discovery_dir=str(found))
    auth = {"Authorization": "Bearer s3cret"}
    with _serve(cfg) as base:
        for k in range(3):  # known individuals, so that reads and identifications have something to find
            iid = httpx.post(base + "/individuals", json={"display_name": f"coat {k}", "species": "zebra"},
                             headers=auth).json()["individual_id"]
            for j in range(2):
                r = httpx.post(f"{base}/individuals/{iid}/images", headers=auth, timeout=60,
                               files={"file": ("c.png", _png(photo(coat(50 + k), j)), "image/png")})
                assert r.status_code in (200, 201), r.text
        operations = sum(len(v) for v in httpx.get(base + "/openapi.json").json()["paths"].values())
        r = subprocess.run([str(ST), "run", base + "/openapi.json", "--checks",
                            "not_a_server_error,response_schema_conformance", "-n", str(MAX_EXAMPLES), "--seed", "0",
                            "-H", "Authorization: Bearer s3cret", "--request-timeout", "120", "--no-color"],
                           capture_output=True, text=True, timeout=1200, cwd=tmp_path)  # its cache stays out of the checkout
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    tested = re.search(r"Tested:\s+(\d+)", out)
    cases = re.search(r"(\d+) generated, (\d+) passed", out)
    assert tested and int(tested.group(1)) == operations, out[-3000:]  # every operation was exercised
    assert cases and int(cases.group(1)) == int(cases.group(2)) >= 20 * operations, out[-3000:]
    (tmp_path / "fuzz.json").write_text(json.dumps({"operations": operations, "cases": int(cases.group(1))}))
