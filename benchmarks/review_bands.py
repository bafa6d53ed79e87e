"""What the review step sees: clips of unseen animals proposed to a gallery, decided by the bands.

Per species, the identities multispecies-v2 never saw (benchmarks/splits/generalization_seed0.csv) are
spread over pseudo-videos as in cross_video_ids.py (each identity in 1-3 videos, images divided among
them). Each cluster goes through `gallery.review.propose` (global shortlist, local verification,
calibrated P(same individual), accept / review / new bands); a perfect reviewer then decides every
pending proposal (confirm the right individual when it is known, else mint it), and the gallery is
recalibrated on its own individuals after each video. Counted: auto-accepted right / wrong, sent to
review (with the suggestion it carried), suggested new right (a first sighting) / wrong (an animal
already in the gallery). Results: benchmarks/results/review_bands.json.
With --fish-videos, the shared fish crop-videos too: every camera of every recording clustered with k
given, each cluster proposed to one gallery shared by all recordings and cameras.
Usage: python benchmarks/review_bands.py [--videos 6] [--accept 0.9] [--species lion ...] [--fish-videos]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.data.imaging import load_image
from reid_hub.errors import GalleryError
from reid_hub.evaluation.runner import machine_info
from reid_hub.models.table_embedding import embed_table
from reid_hub.gallery import Gallery, review
from reid_hub.gallery.recalibration import recalibrate
from reid_hub.models.loading import DEFAULT_MODEL

from common import SHARED, plan_videos  # the benchmarks' shared helpers

HERE = Path(__file__).resolve().parent
SPLIT = HERE / "splits" / "generalization_seed0.csv"
FOLDERS = ["lion", "nyala", "chimpanzee", "cat_faces"]


def _recalibrate(g: Gallery) -> None:
    """Refit P(same) on the gallery's own individuals after a video (skipped while it has too few)."""
    try:
        recalibrate(g)
    except GalleryError:
        pass


def _new_counts() -> dict:
    return {"clusters": 0, "auto_right": 0, "auto_wrong": 0, "review": 0, "review_known": 0, "review_first_seen": 0,
            "new_right": 0, "new_wrong": 0, "suggest_accept_or_review_first_seen": 0}


def run_species(model, part, videos: int, accept: float, seed: int, max_members: int) -> dict:
    labels = part["label"].to_numpy()
    emb = embed_table(model, part)
    plan = plan_videos(labels, videos, seed)
    species = str(part["species"].iloc[0])
    c = _new_counts()
    known: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(tmp, model.config.name, model.fingerprint(), model.embedding_dim)
        g.update_settings(accept=accept)
        for v, clusters in enumerate(plan):
            for truth, rows in clusters.items():
                rows = rows[:max_members]
                imgs = [rdata.read_sample(part.iloc[int(i)].to_dict()) for i in rows]
                e = emb[rows]
                rep = int(np.argmax(e @ e.mean(axis=0)))
                out = review.propose(g, e, imgs[rep], species=species, source=f"video{v}#{truth}", images=imgs)
                _count(c, g, out, truth, known)
            _recalibrate(g)
        g.close()
    return _finish(c)


def run_fish_videos(model, accept: float, max_members: int, cache: Path) -> dict:
    """The shared fish crop-videos: every camera of every recording clustered (k = fish in view), each
    cluster proposed to one gallery shared by all recordings and cameras (truth: the cluster's majority fish)."""
    from reid_hub.video import ClusterConfig, cluster_crops, read_crop_table

    c = {**_new_counts(), "cluster_purity": []}
    known: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(tmp, model.config.name, model.fingerprint(), model.embedding_dim)
        g.update_settings(accept=accept)
        for table in sorted((SHARED / "video").glob("fish_fs48_seq*/tracks.csv")):
            crops = read_crop_table(table)
            for cam, sub in crops.groupby("camera"):
                sub = sub.reset_index(drop=True)
                k = int(sub["identity"].nunique())
                res = cluster_crops(sub, model, ClusterConfig(k=k), cache_dir=cache)
                det = res.detections.reset_index(drop=True)
                for key, emb_all in res.clusters().items():
                    rows = np.flatnonzero(det["label"].to_numpy() == int(key))
                    truth_counts = sub.loc[rows, "identity"].value_counts()
                    truth = str(truth_counts.index[0])
                    c["cluster_purity"].append(float(truth_counts.iloc[0] / len(rows)))
                    pick = rows[np.linspace(0, len(rows) - 1, min(max_members, len(rows))).round().astype(int)]
                    imgs = [load_image(det.loc[int(i), "path"]) for i in pick]
                    e = np.asarray(res.embeddings[pick], np.float32)
                    rep = int(np.argmax(e @ e.mean(axis=0)))
                    out = review.propose(g, e, imgs[rep], species="fish", source=f"{table.parent.name}/{cam}#{key}",
                                         video=table.parent.name, camera=str(cam), cluster=key, images=imgs)
                    _count(c, g, out, truth, known)
            _recalibrate(g)
        g.close()
    c["cluster_purity"] = float(np.mean(c["cluster_purity"]))
    return _finish(c)


def _count(c: dict, g: Gallery, out: dict, truth: str, known: dict[str, str]) -> None:
    """Tally one proposal against the truth, then let a perfect reviewer decide it."""
    c["clusters"] += 1
    seen = truth in known
    if out["status"] == review.AUTO:
        c["auto_right" if seen and out["individual_id"] == known[truth] else "auto_wrong"] += 1
        return
    c["review"] += 1
    c["review_known" if seen else "review_first_seen"] += 1
    if out["decision"] == "new":
        c["new_wrong" if seen else "new_right"] += 1
    elif not seen:
        c["suggest_accept_or_review_first_seen"] += 1
    if seen:
        review.decide(g, out["proposal_id"], "confirm", individual_id=known[truth], actor="oracle")
    else:
        known[truth] = review.decide(g, out["proposal_id"], "new", display_name=truth,
                                     actor="oracle")["outcome"]["individual_id"]


def _finish(c: dict) -> dict:
    n = max(1, c["clusters"])
    return {**c, "auto_accepted_share": (c["auto_right"] + c["auto_wrong"]) / n, "review_share": c["review"] / n,
            "auto_precision": c["auto_right"] / max(1, c["auto_right"] + c["auto_wrong"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--accept", type=float, default=0.9)
    ap.add_argument("--species", nargs="*")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-members", type=int, default=8)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--fish-videos", action="store_true", help="also the fish crop-videos (every camera)")
    args = ap.parse_args()
    model = from_pretrained(args.model)
    out = HERE / "results" / "review_bands.json"
    report = json.loads(out.read_text()) if out.is_file() else {}
    report.update(model=args.model, split=SPLIT.name, videos=args.videos, machine=machine_info(),
                  protocol=__doc__.split("\n\n")[1])
    for folder in args.species or FOLDERS:
        df = rdata.apply_split(rdata.load_metadata_folder(SHARED / folder), SPLIT)
        part = df[df["split"] == "unseen"].reset_index(drop=True)
        r = run_species(model, part, args.videos, args.accept, args.seed, args.max_members)
        report.setdefault("species", {}).setdefault(str(part["species"].iloc[0]), {})[f"accept={args.accept}"] = r
        print(f"{folder}: {json.dumps(r)}", flush=True)
        out.write_text(json.dumps(report, indent=1))
    if args.fish_videos:
        r = run_fish_videos(model, args.accept, args.max_members, Path(tempfile.gettempdir()) / "reid-hub-fish-desc")
        report.setdefault("species", {}).setdefault("fish crop-videos", {})[f"accept={args.accept}"] = r
        print(f"fish crop-videos: {json.dumps(r)}", flush=True)
        out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
