"""Open-set decisions through a gallery, the way issue 24 measured them: per unseen identity one query image,
the rest enrolled (with pictures, so local features verify), 30% of identities never enrolled; recalibrate;
identify every query. Counted per species and decision rule: top-1 of known queries, the share of known animals
decided `new` (each is a false individual a person must merge later) and the share of unknown animals decided
`new` (what should happen). Rules on the same identifications: `p_best` (new when the best candidate's P(same)
is below the calibration's threshold on it, the rule before) and `p_known` (new when P(known), the summed P of
the candidate individuals, is below its own threshold). Split: generalization_seed0 unseen identities.
Saves benchmarks/results/open_set_decisions.json; needs ../shared/data.
Usage: python benchmarks/open_set_decisions.py [--species lion nyala ...] [--max-tied 0.5]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.evaluation.runner import machine_info
from reid_hub.gallery import open_gallery
from reid_hub.gallery import recalibration as gcal
from reid_hub.gallery.identification import calibration_set, identify
from reid_hub.gallery.recalibration import recalibrate
from reid_hub.scoring.decisions import NEW, DecisionBands
from reid_hub.scoring.fusion import known_probability

HERE = Path(__file__).parent


def run_species(model, name: str, data: Path, split: Path, seed: int = 0) -> dict:
    df = rdata.apply_split(rdata.load_metadata_folder(data / name), split)
    df = df[df["split"] == "unseen"].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    ids = sorted(df["identity"].unique())
    counts = df["identity"].value_counts()
    ids = [i for i in ids if counts[i] >= 2]
    unknown = set(rng.choice(ids, size=int(round(0.3 * len(ids))), replace=False).tolist())
    queries, enrolled = [], {}
    for ident in ids:
        rows = df[df["identity"] == ident].index.to_numpy()
        q = int(rng.choice(rows))
        queries.append((ident, q))
        if ident not in unknown:
            enrolled[ident] = [int(r) for r in rows if r != q]
    images = {i: rdata.read_sample(df.loc[i].to_dict()) for i in df.index}
    emb = dict(zip(images, model.embed([images[i] for i in images])))
    with tempfile.TemporaryDirectory() as tmp:
        g = open_gallery(Path(tmp) / "g", model)
        for ident, rows in enrolled.items():
            iid = g.add_individual(str(ident), species=name)
            g.enroll(iid, np.stack([emb[r] for r in rows]), images=[images[r] for r in rows])
        report = recalibrate(g)
        cal = calibration_set(g).for_species(name)
        out = {"known_queries": 0, "unknown_queries": 0, "top1_known": 0, "calibration": cal.report.get("kind"),
               "fallback": cal.report.get("fallback"), "best_two_tied": cal.report.get("best_two_tied"),
               "rules": {"p_best": {"known_new": 0, "unknown_new": 0}, "p_known": {"known_new": 0, "unknown_new": 0}}}
        for ident, q in queries:
            r = identify(g, emb[q][None], images[q], k=5)
            known = ident not in unknown
            out["known_queries" if known else "unknown_queries"] += 1
            top = r.matches[0] if r.matches else None
            if known and top is not None and top.display_name == str(ident):
                out["top1_known"] += 1
            p_best = top.probability if top is not None and top.probability is not None else 0.0
            p_known = known_probability([m.probability for m in r.matches if m.probability is not None])
            bands_best = DecisionBands(accept=1.0, new=min(1.0, cal.new_threshold), auto_accept=False)
            d_best = bands_best.decide(p_best)
            d_known = (DecisionBands(accept=1.0, new=cal.known_threshold, auto_accept=False).decide(p_best, p_known)
                       if cal.known_threshold is not None else d_best)
            for rule, d in (("p_best", d_best), ("p_known", d_known)):
                if d == NEW:
                    out["rules"][rule]["known_new" if known else "unknown_new"] += 1
        g.close()
    for rule in out["rules"].values():
        rule["known_new_share"] = round(rule["known_new"] / max(1, out["known_queries"]), 3)
        rule["unknown_new_share"] = round(rule["unknown_new"] / max(1, out["unknown_queries"]), 3)
    out["top1_known"] = round(out["top1_known"] / max(1, out["known_queries"]), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--species", nargs="+", default=["lion", "nyala", "chimpanzee", "cat_faces", "fish_fs48"])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--split", default=str(HERE / "splits" / "generalization_seed0.csv"))
    ap.add_argument("--max-tied", type=float, default=gcal.MAX_TIED_SHARE,
                    help="isotonic -> logistic fallback when the best two candidates tie for more queries than this")
    ap.add_argument("--out", default=str(HERE / "results" / "open_set_decisions.json"))
    args = ap.parse_args()
    gcal.MAX_TIED_SHARE = args.max_tied
    model = from_pretrained(args.model)
    res = {}
    for name in args.species:
        res[name] = run_species(model, name, Path(args.data), Path(args.split))
        print(name, json.dumps(res[name]))
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    old.setdefault("runs", {})[f"max_tied={args.max_tied}"] = res
    old.update({"model": args.model, "split": "generalization_seed0 unseen identities; 30% never enrolled, seed 0",
                "machine": machine_info()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(old, indent=2))


if __name__ == "__main__":
    main()
