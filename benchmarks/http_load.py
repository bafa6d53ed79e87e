"""HTTP load on loopback: search requests/s under concurrency, with concurrent enrollments.

Starts the real app (uvicorn, the released model, a fresh gallery) in a subprocess on 127.0.0.1,
then runs bounded client threads: searchers post query images for a fixed time, one writer enrolls
images. Counts failed requests and checks afterwards that every acknowledged enrollment is in the
gallery. Writes benchmarks/results/http_load.json.
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (160, 200, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 4, 8])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--out", default=str(HERE / "results" / "http_load.json"))
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp()
    code = ("from reid_hub.app.ui import create_app; import uvicorn; "
            f"from reid_hub.app.service import ServiceConfig; "
            f"uvicorn.run(create_app(ServiceConfig(model={args.model!r}, gallery_dir={tmp!r}, token='t')), "
            f"host='127.0.0.1', port={port}, log_level='warning')")
    server = subprocess.Popen([sys.executable, "-c", code])
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer t"}
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        c = httpx.Client(base_url=base, timeout=60, headers=auth)
        seed_ids = []
        for k in range(20):
            iid = c.post("/individuals", json={"display_name": f"seed{k}"}).json()["individual_id"]
            c.post(f"/individuals/{iid}/images", files={"file": ("s.png", png(k), "image/png")}).raise_for_status()
            seed_ids.append(iid)
        queries = [png(1000 + k) for k in range(16)]
        results = []
        for n_clients in args.clients:
            stop = time.time() + args.seconds
            lat: list[float] = []
            fails: list[str] = []
            acked: list[tuple[str, int]] = []
            lock = threading.Lock()

            def searcher(k: int) -> None:
                with httpx.Client(base_url=base, timeout=120) as cl:
                    i = k
                    while time.time() < stop:
                        t = time.perf_counter()
                        r = cl.post("/search", files={"file": ("q.png", queries[i % len(queries)], "image/png")})
                        with lock:
                            (lat.append(time.perf_counter() - t) if r.status_code == 200
                             else fails.append(f"search {r.status_code}"))
                        i += 1

            def writer() -> None:
                with httpx.Client(base_url=base, timeout=120, headers=auth) as cl:
                    k = 0
                    while time.time() < stop:
                        iid = seed_ids[k % len(seed_ids)]
                        r = cl.post(f"/individuals/{iid}/images",
                                    files={"file": ("e.png", png(5000 + n_clients * 1000 + k), "image/png")})
                        with lock:
                            (acked.append((iid, r.json()["image_id"])) if r.status_code == 201
                             else fails.append(f"enroll {r.status_code}"))
                        k += 1

            threads = [threading.Thread(target=searcher, args=(k,)) for k in range(n_clients)]
            threads.append(threading.Thread(target=writer))
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - t0
            inds = {i["id"]: i["images"] for i in c.get("/individuals").json()}
            results.append({"clients": n_clients, "search_requests": len(lat), "requests_per_s": len(lat) / wall,
                            "p50_ms": 1e3 * float(np.percentile(lat, 50)) if lat else None,
                            "p99_ms": 1e3 * float(np.percentile(lat, 99)) if lat else None,
                            "failed_requests": len(fails), "enrollments_acknowledged": len(acked),
                            "gallery_images_after": sum(inds.values())})
            print(json.dumps(results[-1]), flush=True)
        total_acked = sum(r["enrollments_acknowledged"] for r in results) + 20
        final = sum(i["images"] for i in c.get("/individuals").json())
        report = {"model": args.model, "seconds_per_level": args.seconds, "levels": results,
                  "enrollments_acknowledged_total": total_acked, "gallery_images_final": final,
                  "lost_enrollments": total_acked - final}
        from reid_hub.evaluation.runner import machine_info
        report["machine"] = machine_info()
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"lost enrollments: {total_acked - final}; wrote {args.out}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
