"""`reid-hub review ACTION`: the review queue of a gallery: list, show, confirm, reject, new, undo, export-pairs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .args import positive_int, row_list


def _cmd_review(args: argparse.Namespace) -> int:
    from ..gallery import Gallery, review

    g = Gallery.open_existing(args.gallery)
    if args.review_action == "list":
        items, total = review.pending(g, args.offset, args.limit, args.status)
        print(f"{total} {args.status} proposal(s)")
        for p in items:
            c = p.current or {}
            prob = "-" if p.probability is None else f"{p.probability:.2f}"
            print(f"#{p.id}  {p.suggestion:6s}  P={prob}  {p.source or p.video or ''}  n={p.n}  "
                  f"candidate: {c.get('display_name', '-')} ({c.get('individual_id', '-')})")
        return 0
    if args.review_action == "export-pairs":
        import pandas as pd

        pairs = review.decided_pairs(g)
        out = Path(args.out or "review_pairs.csv")
        pd.DataFrame(pairs, columns=["proposal_id", "species", "source", "individual_id", "image_id", "same",
                                     "global_score", "local_score", "probability", "decided_by"]).to_csv(out, index=False)
        print(f"wrote {len(pairs)} labelled pairs to {out}")
        return 0
    if args.id is None:
        raise ConfigError(f"review {args.review_action} needs --id")
    if args.review_action == "show":
        print(json.dumps({**review.get(g, args.id).to_dict(), "audit": review.audit_log(g, args.id)}, indent=2,
                         default=float))
        return 0
    action = args.review_action.replace("-", "_")
    if action == "take_out" and not args.members:
        raise ConfigError("take-out needs --members K,K,... (positions 0..n-1 of the proposal's images)")
    out = review.decide(g, args.id, action, individual_id=args.individual, display_name=args.name,
                        force=args.force, actor=args.actor, members=args.members)
    print(json.dumps(out, indent=2, default=float))
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the review command to the `reid-hub` parser."""
    s = sub.add_parser("review", help="review identity proposals: list, show, confirm, reject, new, undo, "
                                      "export-pairs")
    s.add_argument("review_action", choices=["list", "show", "confirm", "reject", "new", "undo", "take-out",
                                                   "export-pairs"])
    s.add_argument("--gallery", required=True, help="gallery folder")
    s.add_argument("--id", type=int, help="proposal id")
    s.add_argument("--individual", help="confirm into / reject this individual (default: the current candidate)")
    s.add_argument("--name", help="new: the new individual's display name")
    s.add_argument("--members", type=row_list, help="take-out: positions (0..n-1) of the proposal's images that are "
                                                    "not the animal")
    s.add_argument("--force", action="store_true", help="new: allow a name already used in the species")
    s.add_argument("--actor", default="local", help="who decides (audit trail)")
    s.add_argument("--status", default="pending", choices=["pending", "confirmed", "new", "auto-accepted"])
    s.add_argument("--offset", type=int, default=0)
    s.add_argument("--limit", type=positive_int, default=50)
    s.add_argument("--out", help="export-pairs: CSV path")
    s.set_defaults(func=_cmd_review)

