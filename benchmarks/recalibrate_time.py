"""How long `recalibrate` takes on a gallery of real photos, cold and after an enrollment.

A gallery of N images (default 1,500) of one staged species (default nyala: large flank photos, the slowest to
verify) is enrolled with its pictures (local features are extracted at enrollment, not timed here); then
`recalibrate` is timed three times: cold (every calibration pair verified), again with nothing new (every pair read
from the gallery's cache), and after enrolling 30 more images (only their pairs verified). The baseline in the same
run is the verification the previous release did per calibration query (the species' default shortlist: 100
candidates above 500 images), timed on the same gallery with the cache bypassed for a sample of queries and scaled.
Writes benchmarks/results/recalibrate_time.json. Usage: python benchmarks/recalibrate_time.py [--species nyala]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


from common import SHARED, write_result  # the benchmarks' shared helpers
from reid_hub import DEFAULT_MODEL, from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.gallery import Gallery
from reid_hub.gallery.recalibration import CALIBRATION_DEPTH, recalibrate
from reid_hub.scoring.matchers import default_shortlist


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--species", default="nyala")
    ap.add_argument("--images", type=int, default=1500)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = from_pretrained(DEFAULT_MODEL)
    df = rdata.load_metadata_folder(SHARED / args.species)
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    base, extra = df.iloc[: args.images], df.iloc[args.images: args.images + 30]
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(Path(tmp) / "g", model.config.name, model.fingerprint(), model.embedding_dim)
        t0 = time.perf_counter()
        for part in (base,):
            for ident, rows in part.groupby("identity"):
                imgs = [rdata.read_sample(r) for r in rows.to_dict("records")]
                iid = g.add_individual(str(ident), species=args.species)
                g.enroll(iid, model.embed(imgs), images=imgs)
        enroll_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        report = recalibrate(g)
        cold = time.perf_counter() - t1
        t2 = time.perf_counter()
        recalibrate(g)
        cached = time.perf_counter() - t2
        names = {d["display_name"]: d["id"] for d in g.individuals()}
        for ident, rows in extra.groupby("identity"):
            imgs = [rdata.read_sample(r) for r in rows.to_dict("records")]
            iid = names.get(str(ident)) or g.add_individual(str(ident), species=args.species)
            g.enroll(iid, model.embed(imgs), images=imgs)
        t3 = time.perf_counter()
        after = recalibrate(g)
        incremental = time.perf_counter() - t3
        # the previous release's depth on the same pairs: time a sample of its per-query verification
        ids, _ = g.labelled_images(args.species)
        feats = g.features.stored(ids[:60].tolist(), "sift")
        m = g.features.matcher("sift")
        sample = [int(i) for i in ids[:60] if int(i) in feats]
        t4 = time.perf_counter()
        n_pairs = 0
        for a in sample[:20]:
            for b in sample[20:60]:
                m.match(feats[a], feats[b])
                n_pairs += 1
        per_pair = (time.perf_counter() - t4) / max(1, n_pairs)
        old_depth = default_shortlist("sift", len(g))
        queries = min(600, len(ids))
        g.close()
    sp = report[args.species]
    out = {"species": args.species, "images": int(len(base)), "model": DEFAULT_MODEL,
           "enroll_with_features_s": round(enroll_s, 1), "recalibrate_cold_s": round(cold, 1),
           "recalibrate_nothing_new_s": round(cached, 1), "recalibrate_after_30_more_images_s": round(incremental, 1),
           "calibration_depth": CALIBRATION_DEPTH, "calibration_pairs": sp.get("pairs"),
           "sift_ms_per_pair": round(1000 * per_pair, 2),
           "previous_release_depth": old_depth,
           "previous_release_verification_s_estimated": round(queries * old_depth * per_pair, 1),
           "decisions": {k: v for k, v in sp.get("decisions", {}).items()},
           "pairs_after_enrollment": after[args.species].get("pairs")}
    print(out)
    write_result("recalibrate_time", out)


if __name__ == "__main__":
    main()
