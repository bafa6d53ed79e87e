"""Open-set decisions through a gallery, as a user meets them: per unseen identity (never trained on) one query
image, the rest enrolled with their pictures (local features verify), 30% of the identities never enrolled;
`recalibrate` (timed); `identify` every query with auto-accept on. Several seeds per species so that each species
has at least 30 unknown queries in all.

Reported per species and seed: ROC AUC of known-vs-new for three scores (the best candidate's P(same), the summed
P of the candidates as the previous release did, and the policy's `p_new`), balanced accuracy of new-vs-known
(automatic `new` vs the rest), the precision and coverage of the automatic decisions (`accept`: right when the best
candidate is the animal; `new`: right when the animal was never enrolled), the share sent to review, and the
recalibration time. Split: generalization_seed0 unseen identities. Writes benchmarks/results/open_set_decisions.json
(resumable: finished species/seed pairs are kept). Needs ../shared/data.
Usage: python benchmarks/open_set_decisions.py [--species lion nyala ...] [--seeds 0 1 2] [--min-unknown 30]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from common import RESULTS, SHARED, write_result  # the benchmarks' shared helpers
from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.runner import imagenet_baseline
from reid_hub.gallery import Gallery
from reid_hub.gallery.identification import identify
from reid_hub.gallery.recalibration import recalibrate
from reid_hub.scoring.decisions import ACCEPT, NEW, REVIEW

HERE = Path(__file__).resolve().parent


def _auc(pos: list[float], neg: list[float]) -> float:
    """ROC AUC with scores rounded to 6 decimals: an isotonic calibration's plateau (P = 0.999948 for known and
    unknown cats alike) differs only in float noise, which must not break ties."""
    from reid_hub.evaluation.metrics import auroc

    return round(auroc(np.round(np.asarray(pos, float), 6), np.round(np.asarray(neg, float), 6)), 4)


def _aucs(rows: list[dict]) -> dict[str, float]:
    """Known-vs-new ROC AUC of the best P (low = new), the summed P and p_new (high = new) over these queries."""
    known = [r for r in rows if r["known"]]
    unk = [r for r in rows if not r["known"]]
    with_p = [r for r in rows if r["p_new"] is not None]
    return {"p_best": _auc([-r["p_best"] for r in unk], [-r["p_best"] for r in known]),
            "p_sum": _auc([-r["p_sum"] for r in unk], [-r["p_sum"] for r in known]),
            "p_new": _auc([r["p_new"] for r in with_p if not r["known"]], [r["p_new"] for r in with_p if r["known"]])}


def run_seed(model, df, images: dict, emb: dict, species: str, seed: int) -> dict:
    """One seed: which identities are never enrolled and which image of each is the query."""
    rng = np.random.default_rng(seed)
    counts = df["identity"].value_counts()
    ids = sorted(i for i in df["identity"].unique() if counts[i] >= 2)
    unknown = set(rng.choice(ids, size=int(round(0.3 * len(ids))), replace=False).tolist())
    queries, enrolled = [], {}
    for ident in ids:
        rows = df.index[df["identity"] == ident].to_numpy()
        q = int(rng.choice(rows))
        queries.append((ident, q))
        if ident not in unknown:
            enrolled[ident] = [int(r) for r in rows if r != q]
    with tempfile.TemporaryDirectory() as tmp:
        dim = len(next(iter(emb.values())))
        g = Gallery(Path(tmp) / "g", "bench", "bench", dim)
        for ident, rows in enrolled.items():
            iid = g.add_individual(str(ident), species=species)
            g.enroll(iid, np.stack([emb[r] for r in rows]), images=[images[r] for r in rows])
        g.update_settings(auto_accept=True)
        t0 = time.perf_counter()
        report = recalibrate(g)
        recal_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        report_again = recalibrate(g)  # nothing enrolled since: every verified pair comes from the cache
        recal_cached_s = time.perf_counter() - t1
        rows = []
        for ident, q in queries:
            r = identify(g, emb[q][None], images[q], k=1000)
            top = r.matches[0] if r.matches else None
            ps = [m.probability for m in r.matches if m.probability is not None]
            rows.append({"known": ident not in unknown, "decision": r.decision, "p_new": r.p_new,
                         "p_best": ps[0] if ps else 0.0, "p_sum": float(min(1.0, sum(ps))),
                         "top_right": top is not None and top.display_name == str(ident),
                         "precision": r.decision_precision})
        g.close()
    known = [r for r in rows if r["known"]]
    unk = [r for r in rows if not r["known"]]

    def share(rs, cond) -> float:
        return round(sum(1 for r in rs if cond(r)) / max(1, len(rs)), 4)

    acc = [r for r in rows if r["decision"] == ACCEPT]
    new = [r for r in rows if r["decision"] == NEW]
    tpr = share(unk, lambda r: r["decision"] == NEW)
    tnr = share(known, lambda r: r["decision"] != NEW)
    pol = report.get(species, {}).get("decisions", {})
    return {
        "images": int(len(df)), "individuals_enrolled": len(enrolled), "known_queries": len(known),
        "unknown_queries": len(unk), "top1_known": share(known, lambda r: r["top_right"]),
        "auc": _aucs(rows),
        "balanced_accuracy_new": round((tpr + tnr) / 2, 4),
        "accept": {"n": len(acc), "right": sum(r["top_right"] for r in acc),
                   "coverage_of_known": share(known, lambda r: r["decision"] == ACCEPT),
                   "stated_precision": acc[0]["precision"] if acc else None},
        "new": {"n": len(new), "right": sum(not r["known"] for r in new),
                "coverage_of_unknown": share(unk, lambda r: r["decision"] == NEW),
                "stated_precision": new[0]["precision"] if new else None},
        "review_share": share(rows, lambda r: r["decision"] == REVIEW),
        "recalibrate_s": round(recal_s, 1), "recalibrate_cached_s": round(recal_cached_s, 1),
        "calibration_pairs": report.get(species, {}).get("pairs"), "policy": pol,
        "same_report": report_again.get(species, {}).get("pairs") == report.get(species, {}).get("pairs"),
        "queries": [{k: r[k] for k in ("known", "decision", "p_new", "p_best", "p_sum", "top_right")} for r in rows],
    }


def pooled(runs: dict) -> dict:
    """One species' seeds together: AUCs over every query of every seed, balanced accuracy, automatic decisions."""
    rows = [q for r in runs.values() for q in r["queries"]]
    known = [r for r in rows if r["known"]]
    unk = [r for r in rows if not r["known"]]
    acc = [r for r in rows if r["decision"] == ACCEPT]
    new = [r for r in rows if r["decision"] == NEW]
    tpr = sum(r["decision"] == NEW for r in unk) / max(1, len(unk))
    tnr = sum(r["decision"] != NEW for r in known) / max(1, len(known))
    seed_aucs = [_aucs(r["queries"]) for r in runs.values()]
    per_seed = {k: [a[k] for a in seed_aucs if a[k] == a[k]] for k in ("p_best", "p_sum", "p_new")}
    return {"seeds": len(runs), "known_queries": len(known), "unknown_queries": len(unk),
            "auc_mean_over_seeds": {k: round(float(np.mean(v)), 4) if v else None for k, v in per_seed.items()},
            "top1_known": round(sum(r["top_right"] for r in known) / max(1, len(known)), 4),
            "auc": _aucs(rows),
            "balanced_accuracy_new": round((tpr + tnr) / 2, 4),
            "accept": {"n": len(acc), "right": sum(r["top_right"] for r in acc),
                       "coverage_of_known": round(sum(r["decision"] == ACCEPT for r in known) / max(1, len(known)), 4)},
            "new": {"n": len(new), "right": sum(not r["known"] for r in new),
                    "coverage_of_unknown": round(tpr, 4)},
            "review_share": round(sum(r["decision"] == REVIEW for r in rows) / max(1, len(rows)), 4),
            "recalibrate_s_max": max(r["recalibrate_s"] for r in runs.values()),
            "decides_alone_in_seeds": sum(bool(r["policy"].get("automatic")) for r in runs.values())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--species", nargs="+", default=["lion", "nyala", "chimpanzee", "cat_faces", "fish_fs48"])
    ap.add_argument("--split", default=str(HERE / "splits" / "generalization_seed0.csv"))
    ap.add_argument("--setting", choices=("v2-unseen", "imagenet-all"), default="v2-unseen",
                    help="v2-unseen: the released model on the identities it never saw; imagenet-all: every identity "
                         "with ImageNet Lite0 features (no re-ID training: every species is unseen)")
    ap.add_argument("--min-unknown", type=int, default=30, help="seeds run until this many unknown queries")
    ap.add_argument("--max-seeds", type=int, default=20)
    ap.add_argument("--max-images", type=int, default=700, help="images per species (seeded sample of identities)")
    ap.add_argument("--summary-only", action="store_true", help="recompute the summary of the stored runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = "open_set_decisions" + ("" if args.setting == "v2-unseen" else "_imagenet")
    out_file = RESULTS / f"{result}.json"
    old = json.loads(out_file.read_text()) if out_file.is_file() else {}
    done = old.get("runs", {}) if old.get("rule") == "policy" else {}
    if args.summary_only:
        old["summary"] = {sp: pooled(r) for sp, r in done.items() if r}
        out_file.write_text(json.dumps(old, indent=2, default=float))
        return
    model = from_pretrained(args.model) if args.setting == "v2-unseen" else imagenet_baseline("lite0")
    for name in args.species:
        df = rdata.load_metadata_folder(SHARED / name)
        if args.setting == "v2-unseen":
            df = rdata.apply_split(df, Path(args.split))
            df = df[df["split"] == "unseen"].reset_index(drop=True)
        if len(df) > args.max_images:  # whole identities, seeded, so that recalibration stays a few minutes
            ids = np.random.default_rng(0).permutation(sorted(df["identity"].unique()))
            keep, n = [], 0
            for i in ids:
                n += int((df["identity"] == i).sum())
                if n > args.max_images:
                    break
                keep.append(i)
            df = df[df["identity"].isin(keep)].reset_index(drop=True)
        images = {i: rdata.read_sample(df.loc[i].to_dict()) for i in df.index}
        if args.setting == "v2-unseen":
            vecs = model.embed([images[i] for i in images])
        else:
            vecs = np.concatenate([model.describe(model.preprocess([images[i] for i in list(images)[s:s + 32]]),
                                                  raw_features=True) for s in range(0, len(images), 32)])
            vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        emb = dict(zip(images, vecs.astype(np.float32)))
        runs = done.setdefault(name, {})
        seed = 0
        while sum(r["unknown_queries"] for r in runs.values()) < args.min_unknown and seed < args.max_seeds:
            if str(seed) not in runs:
                runs[str(seed)] = run_seed(model, df, images, emb, name, seed)
                print(name, seed, json.dumps({k: v for k, v in runs[str(seed)].items() if k != "policy"}), flush=True)
                summary = {sp: pooled(r) for sp, r in done.items() if r}
                write_result(result, {"rule": "policy", "setting": args.setting, "summary": summary, "runs": done,
                                      "model": args.model if args.setting == "v2-unseen" else "imagenet lite0",
                                      "split": ("generalization_seed0 unseen identities" if args.setting == "v2-unseen"
                                                else "every identity") + "; per identity one query, 30% never "
                                                                         "enrolled"})
            seed += 1
        if runs:
            print(name, "pooled", json.dumps(pooled(runs)), flush=True)


if __name__ == "__main__":
    main()
