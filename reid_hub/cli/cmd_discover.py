"""`reid-hub discover` and `reid-hub questions`: the individuals of an unlabelled collection, and its pair questions."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from .args import non_negative_int, on_off, open_unit, positive_int


def _cmd_discover(args: argparse.Namespace) -> int:
    from ..discovery.local_evidence import VerifyConfig
    from ..discovery.run import DiscoverRequest, discover
    from ..discovery.session import DiscoveryConfig

    if args.answers and not args.answers_from:
        raise ConfigError("--answers needs --answers-from COLUMN")
    cfg = DiscoveryConfig(adapter=args.adapter, strategy=args.questions, verify=VerifyConfig(matcher=args.verify),
                          **({"threshold": args.threshold} if args.threshold is not None else {}))
    summary = discover(DiscoverRequest(args.table, args.out, args.model, args.species, args.track_column,
                                       args.frame_column, args.answers, args.answers_from, args.batch, cfg,
                                       args.gallery))
    print(f"{summary['images']} images -> {summary['individuals']} individuals "
          f"(threshold {summary['threshold']:.3f}); wrote {args.out}/individuals.csv, "
          f"questions.csv, summary.json" + (", curve.json" if args.answers else ""))
    return 0


def _cmd_questions(args: argparse.Namespace) -> int:
    from ..discovery.run import open_discovery

    d = open_discovery(args.dir)
    if args.questions_action == "answer":
        if args.answer is None:
            raise ConfigError("answer takes one of: same, different, skip, undo")
        if args.answer == "undo":
            d.undo(args.actor)
        else:
            if args.a is None or args.b is None:
                raise ConfigError("answer needs the two rows: --a ROW --b ROW (see questions list)")
            d.answer(args.a, args.b, args.answer, args.actor)
        d.write(args.dir)
        print(f"{len(d.answered())} answers in force; {int(d.labels.max()) + 1} individuals")
        return 0
    print(d.question_table(args.limit).to_string(index=False))
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the discover, questions commands to the `reid-hub` parser."""
    s = sub.add_parser("discover", help="group an unlabelled photo collection into individuals; questions to ask",
                       parents=[runtime])
    s.add_argument("table", help="a folder of images, or a CSV/Parquet table with a path column (metadata.csv)")
    s.add_argument("--out", required=True, help="output folder: individuals.csv, questions.csv, summary.json")
    s.add_argument("--model", default=None, help="model name or folder (default: the released default)")
    s.add_argument("--species", help="only rows of this species (or: the species of every row)")
    s.add_argument("--gallery", help="a gallery folder: each discovered individual is matched to its known "
                                     "individuals and sent to its review queue (DIR/gallery.csv)")
    s.add_argument("--track-column", help="rows sharing a value show one animal (must-links)")
    s.add_argument("--frame-column", help="rows sharing a value are different animals (cannot-links)")
    s.add_argument("--answers", type=non_negative_int, default=0,
                   help="simulate a reviewer answering this many questions (writes curve.json)")
    s.add_argument("--answers-from", help="the column of true identities the simulated reviewer answers from")
    s.add_argument("--batch", type=positive_int, default=10, help="answers applied before the next questions")
    s.add_argument("--questions", choices=["gain", "random"], default="gain",
                   help="how questions are chosen (random: the baseline)")
    s.add_argument("--adapter", type=on_off, default=False,
                   help="learn a per-species adapter from answers (off by default: it has not yet beaten none)")
    s.add_argument("--threshold", type=open_unit, default=None,
                   help="grouping threshold on the neighbourhood similarity (default: the label-free one)")
    s.add_argument("--verify", choices=["sift", "none"], default="sift",
                   help="local verification of candidate pairs (default sift; none: the global embedding alone)")
    s.set_defaults(func=_cmd_discover)

    s = sub.add_parser("questions", help="list or answer the pair questions of a discovery folder")
    s.add_argument("questions_action", choices=["list", "answer"])
    s.add_argument("dir", help="the --out folder of reid-hub discover")
    s.add_argument("answer", nargs="?", choices=["same", "different", "skip", "undo"])
    s.add_argument("--a", type=non_negative_int, help="answer: first row (a_row of questions list)")
    s.add_argument("--b", type=non_negative_int, help="answer: second row (b_row)")
    s.add_argument("--limit", type=positive_int, default=20)
    s.add_argument("--actor", default="local", help="who answers (audit trail)")
    s.set_defaults(func=_cmd_questions)

