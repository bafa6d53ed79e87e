"""`reid-hub population`: capture histories and abundance, with the identification's own uncertainty."""
from __future__ import annotations

import argparse
from typing import Any

from .args import positive_int


def _cmd_population(args: argparse.Namespace) -> int:
    from ..population.report import PopulationRequest, population

    body = population(PopulationRequest(args.source, args.out, args.occasion, args.by, args.draws, args.method,
                                        args.seed))
    unc = body["with_identification_uncertainty"]
    print(f"{body['individuals_seen']} individuals seen over {body['occasions']} occasions")
    for e in body["estimates"]:
        print(f"  {e['method']:9s} N = {e['N']}  [{e['lower']}, {e['upper']}]" + (f"  ({e['note']})" if e["note"]
                                                                                  else ""))
    print(f"  with identification uncertainty ({unc['method']}, {unc['draws']} draws): N = {unc['N']}  "
          f"[{unc['lower']}, {unc['upper']}]")
    print(f"wrote {args.out}/population.json, capture_history.csv, secr_captures.csv, secr_traps.csv, "
          f"camtrapr_records.csv, discovery_curve.png, capture_history.png")
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the population command to the `reid-hub` parser."""
    s = sub.add_parser("population", help="how many animals: capture histories and abundance from identified "
                                          "sightings (a discovery folder or a Camtrap DP package)", parents=[runtime])
    s.add_argument("source", help="a discover --out folder made from a Camtrap DP package, or a package whose "
                                  "observations have individualID")
    s.add_argument("--occasion", default="1d", help="length of one sampling occasion: 30m, 12h, 1d, 7d, 2w")
    s.add_argument("--by", choices=["none", "deployment"], default="none",
                   help="deployment: estimates per deployment too")
    s.add_argument("--out", required=True, help="output folder (population.json, capture_history.csv, exports, plots)")
    s.add_argument("--draws", type=positive_int, default=200,
                   help="plausible identity assignments drawn for the interval with identification uncertainty")
    s.add_argument("--method", choices=["auto", "chao_mh", "schnabel", "chapman", "naive"], default="auto",
                   help="the estimator carried through the identity draws (auto: Chao's Mh where the capture counts "
                        "show heterogeneity, else Schnabel)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_population)
