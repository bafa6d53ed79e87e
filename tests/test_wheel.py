"""The built wheel works outside the repository: it carries the default model and the demo's data, and the loader,
the demo and the server find them inside the installed package."""
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, unpacked as an installed package (its own copy of reid_hub, ahead of the
    checkout's on the path), and a working directory outside the repository."""
    root = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                            "-w", str(root / "dist")], capture_output=True, text=True, timeout=600, cwd=root)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((root / "dist").glob("reid_hub-*.whl"))
    site = root / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    work = root / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "REID_HUB_CACHE": str(root / "cache")}
    return wheel, site, work, env


def run(env, cwd, *args, timeout=600):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def test_the_wheel_holds_the_default_model_and_the_demo_data(installed):
    wheel, _, _, _ = installed
    from reid_hub import DEFAULT_MODEL

    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("config.json", "model.safetensors", "README.md"):
        assert f"reid_hub/model_cards/{DEFAULT_MODEL}/{f}" in names
    assert "reid_hub/model_cards/TEMPLATE.md" in names
    assert {"reid_hub/examples/demo.json", "reid_hub/examples/fly_pair_clip_gt/video.mp4",
            "reid_hub/examples/fly_pair_clip_gt/tracks.csv"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "reid_hub/gallery/demo")) for n in names)


def test_from_pretrained_loads_the_packaged_default_outside_the_repository(installed):
    _, site, work, env = installed
    code = ("import reid_hub, json; from reid_hub import from_pretrained; from reid_hub.resources import "
            "model_cards_dir, source_checkout; m = from_pretrained(); print(json.dumps({'file': reid_hub.__file__, "
            "'cards': str(model_cards_dir()), 'checkout': source_checkout() is not None, 'name': m.config.name, "
            "'dim': m.embedding_dim}))")
    r = run(env, work, "-c", code)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(site)) and got["cards"].startswith(str(site)) and not got["checkout"]
    from reid_hub import DEFAULT_MODEL

    assert got["name"] == DEFAULT_MODEL and got["dim"] > 0


def test_demo_and_serve_run_from_the_installed_package(installed):
    _, site, work, env = installed
    r = run(env, work, "-m", "reid_hub", "demo", "--start", "750", "--frames", "60")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "self-supervised head" in r.stdout and "fly_pair_clip_gt" in r.stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "reid_hub", "serve", "--port", str(port), "--gallery",
                               str(work / "g")], env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        health = None
        for _ in range(240):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        assert health == {"status": "ok", "gallery_images": 0, "individuals": 0}
        assert httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=30, follow_redirects=True).status_code == 200
    finally:
        server.kill()
        server.wait()
