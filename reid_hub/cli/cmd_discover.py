"""`reid-hub discover` and `reid-hub questions`: the individuals of an unlabelled collection, and its pair questions."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from .args import non_negative_float, non_negative_int, on_off, open_unit, positive_int, row_list, unit_share

#: what a person may say of a pair question, and of a group reviewed at once
PAIR_ANSWERS = ("same", "different", "skip", "undo")
GROUP_ANSWERS = ("confirm", "take-out", "merge")


def _cmd_discover(args: argparse.Namespace) -> int:
    from ..discovery.local_evidence import VerifyConfig
    from ..discovery.run import DiscoverRequest, discover
    from ..discovery.session import DiscoveryConfig

    if args.answers and not args.answers_from:
        raise ConfigError("--answers needs --answers-from COLUMN")
    cfg = DiscoveryConfig(adapter=args.adapter, strategy=args.questions, verify=VerifyConfig(matcher=args.verify),
                          **({"threshold": args.threshold} if args.threshold is not None else {}))
    verifier = None
    if args.engine == "ray":
        from ..scale.verification import ray_verifier

        verifier = ray_verifier(args.ray_address)
    summary = discover(DiscoverRequest(args.table, args.out, args.model, args.species, args.track_column,
                                       args.frame_column, args.answers, args.answers_from, args.batch, cfg,
                                       args.gallery, args.review, args.seconds_per_image, args.held_out, verifier))
    animals = summary["animals"]
    print(f"{summary['images']} images -> {summary['individuals']} individuals "
          f"(estimated {animals['estimate']} animals, 95% interval {animals['lower']}-{animals['upper']}; "
          f"threshold {summary['threshold']:.3f}); wrote {args.out}/individuals.csv, "
          f"questions.csv, summary.json" + (", curve.json" if args.answers else ""))
    return 0


def _cmd_questions(args: argparse.Namespace) -> int:
    from ..discovery.folder import open_answers
    from ..discovery.state import QUESTION_COLUMNS

    d = open_answers(args.dir)
    if args.questions_action == "answer":
        if args.answer is None:
            raise ConfigError(f"answer takes one of: {', '.join(PAIR_ANSWERS + GROUP_ANSWERS)}")
        if args.answer == "undo":
            d.undo(args.actor)
        elif args.answer in GROUP_ANSWERS:
            if not args.rows:
                raise ConfigError(f"{args.answer} needs the group's images shown: --rows R,R,... (questions list "
                                  f"--groups)")
            if args.answer == "take-out" and not args.out:
                raise ConfigError("take-out needs the images that are not the animal: --out R,R,...")
            if args.answer == "merge" and not args.merge:
                raise ConfigError("merge needs an image of the group to merge with: --merge R")
            d.answer_group(args.rows, args.out or [], args.merge or [], args.actor, args.apart or [])
        else:
            if args.a is None or args.b is None:
                raise ConfigError("answer needs the two rows: --a ROW --b ROW (see questions list)")
            d.answer(args.a, args.b, args.answer, args.actor)
        d.update_outputs(args.dir)
        print(f"{len(d.answered())} pair answers in force; {int(d.labels.max()) + 1} individuals")
        return 0
    if args.groups:
        for q in d.group_rows(args.limit):
            print(f"group question {q['question']}: {q['individual']} ({q['size']} images; P(one animal) "
                  f"{q['p_within']:.2f}; gain {q['gain']:.1f})")
            for r, path in zip(q["rows"], q["paths"]):
                print(f"  row {r}: {path}")
            for nb in q["neighbours"]:
                print(f"  beside it: {nb['individual']}, P(same) {nb['p_same']:.2f}: "
                      + ", ".join(f"row {r}: {p}" for r, p in zip(nb["rows"], nb["paths"])))
        print("answer: reid-hub questions answer DIR confirm|take-out|merge --rows ROWS [--out ROWS] [--merge ROWS] "
              "[--apart ROWS]")
        return 0
    rows = d.question_rows(args.limit)
    cols = ["question", "a", "b", "a_row", "b_row", "p_same", "gain", "kind"]
    table = [cols] + [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(t[k]) for t in table) for k in range(len(cols))]
    for t in table:
        print("  ".join(v.rjust(w) for v, w in zip(t, widths)))
    print("\ncolumns:")
    for name, meaning in QUESTION_COLUMNS.items():
        print(f"  {name}: {meaning}")
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
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the candidate pairs are verified: this process, or Ray (the engine reid-hub embeds with)")
    s.add_argument("--ray-address", default=None, help="--engine ray: a Ray cluster (auto: a running one; default: "
                                                       "a local Ray on every core)")
    s.add_argument("--review", choices=["pair", "group"], default="pair",
                   help="what the simulated reviewer is shown: one pair per action, or a whole group (--answers "
                        "counts actions)")
    s.add_argument("--seconds-per-image", type=non_negative_float, default=1.5,
                   help="simulated human seconds per image looked at (plus 3 s per action): curve.json's seconds")
    s.add_argument("--held-out", type=unit_share, default=0.0,
                   help="share of identities no simulated question may touch (the adapter is measured on them)")
    s.add_argument("--adapter", type=on_off, default=False,
                   help="learn a per-species adapter from answers (off by default: it has not yet beaten none)")
    s.add_argument("--threshold", type=open_unit, default=None,
                   help="grouping threshold on the neighbourhood similarity (default: the label-free one)")
    s.add_argument("--verify", choices=["sift", "none"], default="sift",
                   help="local verification of candidate pairs (default sift; none: the global embedding alone)")
    s.set_defaults(func=_cmd_discover)

    s = sub.add_parser("questions", help="list or answer the questions of a discovery folder: pairs, or whole groups")
    s.add_argument("questions_action", choices=["list", "answer"])
    s.add_argument("dir", help="the --out folder of reid-hub discover")
    s.add_argument("answer", nargs="?", choices=PAIR_ANSWERS + GROUP_ANSWERS)
    s.add_argument("--a", type=non_negative_int, help="answer: first row (a_row of questions list)")
    s.add_argument("--b", type=non_negative_int, help="answer: second row (b_row)")
    s.add_argument("--groups", action="store_true", help="list: group questions (a discovered individual's images "
                                                         "and the groups beside it)")
    s.add_argument("--rows", type=row_list, help="confirm / take-out / merge: the group's images shown (R,R,...)")
    s.add_argument("--out", type=row_list, help="take-out: the images shown that are not the animal")
    s.add_argument("--merge", type=row_list, help="merge: an image of each neighbouring group that is the animal")
    s.add_argument("--apart", type=row_list, help="an image of each neighbouring group shown that is not the animal")
    s.add_argument("--limit", type=positive_int, default=20)
    s.add_argument("--actor", default="local", help="who answers (audit trail)")
    s.set_defaults(func=_cmd_questions)

