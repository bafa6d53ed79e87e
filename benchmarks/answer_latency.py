"""How long a person waits for an answer on a 2,000-image collection (fish_fs48, 2,109 photos, one species, without
its sequence column), and what verifying the collection costs. `reid-hub discover` once (its embedding and
verification times from summary.json: the candidate graph's pairs, each image's features extracted once), then:
- CLI: `reid-hub questions list` and `reid-hub questions answer` (pair and group), wall time of the whole process,
  the interpreter's start and imports included (5 runs each, median and max);
- service: the work of POST /discovery/answers and POST /discovery/groups/answers (record, regroup what the
  answer touches, rewrite individuals.csv and summary.json), in process (20 runs, median and max).
Writes results/answer_latency.json. Usage: python benchmarks/answer_latency.py [--out-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reid_hub.discovery.folder import open_answers
from reid_hub.evaluation.runner import machine_info

from common import RESULTS, SHARED  # the benchmarks' shared helpers

CLI = [sys.executable, "-m", "reid_hub"]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def stats(xs: list[float]) -> dict[str, float]:
    return {"median": round(float(np.median(xs)), 3), "max": round(float(np.max(xs)), 3), "runs": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default=None, help="keep the discovery folder here (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out_dir or tmp) / "fish"
        table = Path(tmp) / "fish.csv"
        import pandas as pd

        df = pd.read_csv(SHARED / "fish_fs48" / "metadata.csv")
        df["path"] = [str((SHARED / "fish_fs48" / p).resolve()) for p in df["path"]]
        df.drop(columns=[c for c in ("sequence", "identity") if c in df]).to_csv(table, index=False)
        t0 = time.perf_counter()
        subprocess.run(CLI + ["discover", str(table), "--out", str(out)], check=True, capture_output=True)
        t_discover = time.perf_counter() - t0
        summary = json.loads((out / "summary.json").read_text())
        res = {"machine": machine_info(), "images": summary["images"], "discover_seconds": round(t_discover, 1),
               "discover_parts": summary["seconds"], "candidate_pairs": summary["candidate_pairs"]}
        res["cli_list"] = stats([timed(CLI + ["questions", "list", str(out), "--limit", "5"]) for _ in range(5)])
        res["cli_list_groups"] = stats([timed(CLI + ["questions", "list", str(out), "--groups", "--limit", "3"])
                                        for _ in range(5)])
        d = open_answers(out)
        qs = d.question_rows(40)
        pair = []
        for q in qs[:5]:
            pair.append(timed(CLI + ["questions", "answer", str(out), "skip", "--a", str(q["a_row"]),
                                     "--b", str(q["b_row"])]))
        res["cli_answer_pair"] = stats(pair)
        groups = open_answers(out).group_rows(5)
        res["cli_answer_group"] = stats([timed(CLI + ["questions", "answer", str(out), "confirm", "--rows",
                                                      ",".join(map(str, g["rows"][:2]))]) for g in groups[:5]])
        d = open_answers(out)
        service_pair, service_group = [], []
        for q in d.question_rows(60)[10:30]:
            t0 = time.perf_counter()
            d.answer(q["a_row"], q["b_row"], "skip", "bench")
            d.update_outputs(out)
            service_pair.append(time.perf_counter() - t0)
        for g in d.group_rows(20)[:20]:
            t0 = time.perf_counter()
            d.answer_group(g["rows"][:2], [], [], "bench")
            d.update_outputs(out)
            service_group.append(time.perf_counter() - t0)
        res["service_answer_pair"] = stats(service_pair)
        res["service_answer_group"] = stats(service_group)
    (RESULTS / "answer_latency.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
