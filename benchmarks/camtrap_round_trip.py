"""Real images through the camera-trap path: a Camtrap DP package generated from a staged species' photos
(synthetic deployments and days, the photos pasted on a background with their boxes; identities known and kept out
of the package), validated with frictionless, then `reid-hub discover` (the default model, local verification) and
`reid-hub population` on its output; the package written back validated again; the estimates against the true
number of animals. The images stay in a temporary folder (their licenses forbid copying them into the project).
Writes results/camtrap_round_trip.json. Usage: python benchmarks/camtrap_round_trip.py [--species cat_faces ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from reid_hub.data import tables as rdata
from reid_hub.data.tables import read_sample
from reid_hub.data.camtrap_simulation import make_package
from reid_hub.evaluation.runner import machine_info

from common import RESULTS, SHARED  # the benchmarks' shared helpers

CLI = [sys.executable, "-m", "reid_hub"]


def main() -> None:
    import frictionless

    ap = argparse.ArgumentParser()
    ap.add_argument("--species", nargs="*", default=["cat_faces", "chimpanzee", "lion"])
    ap.add_argument("--per-identity", type=int, default=8, help="photos used per identity (at most)")
    ap.add_argument("--occasion", default="1d")
    args = ap.parse_args()
    out_file = RESULTS / "camtrap_round_trip.json"
    res = json.loads(out_file.read_text()) if out_file.is_file() else {"species": {}}
    res["machine"] = machine_info()
    for ds in args.species:
        df = rdata.load_metadata_folder(SHARED / ds)
        df = df.groupby("identity", group_keys=False).head(args.per_identity)
        with tempfile.TemporaryDirectory() as tmp:
            images = [(read_sample(r), str(r["identity"]), str(r.get("species", ds))) for r in df.to_dict("records")]
            t0 = time.perf_counter()
            pkg = make_package(Path(tmp) / "pkg", images, deployments=4, days=20, seed=0)
            valid_in = frictionless.validate(str(pkg)).valid
            out = Path(tmp) / "found"
            subprocess.run(CLI + ["discover", str(pkg), "--out", str(out)], check=True, capture_output=True)
            valid_out = frictionless.validate(str(out / "package" / "datapackage.json")).valid
            subprocess.run(CLI + ["population", str(out), "--occasion", args.occasion, "--out", str(Path(tmp) / "pop"),
                                  "--draws", "200"], check=True, capture_output=True)
            body = json.loads((Path(tmp) / "pop" / "population.json").read_text())
            truth = pd.read_csv(Path(pkg).parent / "truth.csv")
            obs = pd.read_csv(out / "package" / "observations.csv", dtype=str, keep_default_na=False)
            filled = float((obs["individualID"] != "").mean())
            merged = obs.merge(truth, on="observationID")
            res["species"][ds] = {
                "photos": len(truth), "true_animals": int(truth["individual"].nunique()),
                "valid_before": valid_in, "valid_after": valid_out, "individualID_filled": filled,
                "ari": float(adjusted_rand_score(merged["individual"], merged["individualID"])),
                "individuals_seen": body["individuals_seen"], "occasions": body["occasions"],
                "estimates": body["estimates"], "with_identification_uncertainty": body[
                    "with_identification_uncertainty"], "seconds": round(time.perf_counter() - t0, 1)}
        print(ds, json.dumps(res["species"][ds])[:400], flush=True)
        out_file.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
