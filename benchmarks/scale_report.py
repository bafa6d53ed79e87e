"""The performance report, in one command: `python benchmarks/scale_report.py` (or `make report`).

1. Embedding throughput: raw timm forward of the backbone vs the default model (embed_throughput.py),
   and a real image collection embedded by the local engine vs Ray Data in local mode (2 workers),
   both through reid_hub.scale.embedding (sharded Parquet output).
2. Gallery search latency and recall@10 vs size for flat, IVF-Flat, HNSW and IVF-PQ, as a ratio to
   raw FAISS on the same index, with index bytes per vector (gallery_search.py).
3. Video: time per stage and peak memory vs video length (video_cost.py).
Each part writes its JSON in benchmarks/results/ (a part whose JSON exists is reused with --reuse);
this script adds scale_report.json and scale_report.png.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, SHARED  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> None:
    print(f"== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)


def engines(model: str, images: int) -> dict:
    """Local engine vs Ray local mode (2 workers) on the same real images, end to end."""
    from reid_hub.data import tables as rdata
    from reid_hub.evaluation.runner import machine_info
    from reid_hub.scale.embedding import EmbedJob, embed_collection

    sources = [p.parent for p in sorted(SHARED.glob("*/metadata.csv"))]
    if not sources:
        raise SystemExit(f"no real images at {SHARED}")
    df = rdata.load_sources(sources)
    df = df.iloc[:: max(1, len(df) // images)].head(images).reset_index(drop=True)
    out: dict = {"images": len(df), "machine": machine_info()}
    for engine, workers in (("local", None), ("ray", 2)):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = embed_collection(df, EmbedJob(model, tmp, engine=engine, workers=workers), progress=False)
            total = time.perf_counter() - t0
        out[engine] = {"seconds": total, "images_per_s": res["embedded"] / total, "workers": workers or 1,
                       "errors": res["errors"]}
        print(f"{engine:5s} {res['embedded']} images in {total:.1f}s: {res['embedded'] / total:.1f} img/s", flush=True)
    out["ray_over_local"] = out["ray"]["images_per_s"] / out["local"]["images_per_s"]
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(20, 4.5))
    tp = report.get("embed_throughput", {}).get("images_per_s", {})
    bars = {k: v for k, v in {
        "raw timm": tp.get("raw_timm_forward_channels_last"), "reid-hub tensors": tp.get("reid_hub_embed_tensors"),
        "reid-hub images": tp.get("reid_hub_embed_pil_images"),
        "local engine": report.get("engines", {}).get("local", {}).get("images_per_s"),
        "Ray 2 workers": report.get("engines", {}).get("ray", {}).get("images_per_s")}.items() if v}
    ax[0].bar(list(bars), list(bars.values()), color="tab:blue")
    ax[0].set_ylabel("images / s")
    ax[0].set_title("embedding throughput (2 CPU cores)")
    ax[0].tick_params(axis="x", rotation=30)
    rows = report.get("gallery_search", {}).get("results", [])
    for kind in ("flat", "ivf", "hnsw", "ivfpq"):
        pts = sorted((r["size"], r["gallery_p50_ms"], r["raw_p50_ms"], r.get("recall_at_10_vs_exact"))
                     for r in rows if r["kind"] == kind)
        if pts:
            ax[1].loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{kind} gallery")
            ax[1].loglog([p[0] for p in pts], [p[2] for p in pts], "x--", label=f"{kind} raw FAISS")
            if pts[0][3] is not None:
                ax[2].semilogx([p[0] for p in pts], [p[3] for p in pts], "o-", label=kind)
    ax[1].set_xlabel("gallery size (vectors)")
    ax[1].set_ylabel("p50 latency per query (ms)")
    ax[1].legend(fontsize=7)
    ax[1].set_title("search latency")
    ax[2].set_xlabel("gallery size (vectors)")
    ax[2].set_ylabel("recall@10 vs exact (raw index)")
    ax[2].legend(fontsize=8)
    ax[2].set_title("ANN recall")
    video = report.get("video_cost", {}).get("scaling", [])
    for model in sorted({r["model"] for r in video}):
        pts = sorted((r["detections"], r["peak_rss_mb"], r["total_s"]) for r in video if r["model"] == model)
        ax[3].semilogx([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"peak RSS, {model}")
    ax[3].axhline(1024, color="gray", ls=":", label="1 GB")
    ax[3].set_xlabel("detections in the video")
    ax[3].set_ylabel("peak RSS (MB)")
    ax[3].legend(fontsize=8)
    ax[3].set_title("video pipeline memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="multispecies-v1")
    ap.add_argument("--images", type=int, default=512, help="real images for local vs Ray")
    ap.add_argument("--sizes", nargs="*", default=["10000", "100000", "1000000"])
    ap.add_argument("--reuse", action="store_true", help="reuse part results already in benchmarks/results")
    args = ap.parse_args()
    report: dict = {}
    if not (args.reuse and (RESULTS / "embed_throughput.json").is_file()):
        run("embed_throughput.py", "--model", args.model)
    report["embed_throughput"] = json.loads((RESULTS / "embed_throughput.json").read_text())
    if not (args.reuse and (RESULTS / "embed_engines.json").is_file()):
        (RESULTS / "embed_engines.json").write_text(json.dumps(engines(args.model, args.images), indent=2))
    report["engines"] = json.loads((RESULTS / "embed_engines.json").read_text())
    gs = RESULTS / "gallery_search_scale.json"
    if not (args.reuse and gs.is_file()):
        run("gallery_search.py", "--sizes", *args.sizes, "--kinds", "flat", "ivf", "hnsw", "ivfpq",
            "--queries", "100", "--out", str(gs))
    report["gallery_search"] = json.loads(gs.read_text())
    vc = RESULTS / "video_cost.json"
    if not (args.reuse and vc.is_file()):
        run("video_cost.py", "--model", args.model)
    report["video_cost"] = json.loads(vc.read_text())
    (RESULTS / "scale_report.json").write_text(json.dumps(report, indent=2))
    plot(report, RESULTS / "scale_report.png")
    print(f"wrote {RESULTS / 'scale_report.json'} and scale_report.png")


if __name__ == "__main__":
    main()
