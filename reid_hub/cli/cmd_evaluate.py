"""`reid-hub evaluate`: a model against baselines on unseen identities, in one split."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data import tables as rdata
    from ..evaluation.runner import evaluate_model, method_names, write_results
    from ..models.loading import from_pretrained

    model = from_pretrained(args.model)
    df = rdata.load_sources(args.data)
    if args.split:
        df = rdata.apply_split(df, args.split)
    else:
        df = rdata.split_by_identity(df, args.unseen_fraction, args.seed)
    methods = [m.strip() for m in (args.methods or "model," + args.baselines).split(",") if m.strip()]
    unknown = sorted(set(methods) - set(method_names()))
    if unknown or not methods:
        raise ConfigError(f"--methods takes a comma list of {', '.join(method_names())}; got {unknown or methods}")
    # the model's own scores are always reported: every other method is read against them
    if args.shortlist is not None and args.shortlist < 1:
        raise ConfigError("--shortlist must be at least 1")
    if args.cross_column and args.cross_column not in df.columns:
        raise ConfigError(f"--cross-column {args.cross_column!r}: no data source has that column")
    results = evaluate_model(model, df, baselines=[m for m in methods if m != "model"],
                             imagenet_backbone=args.imagenet_backbone, seed=args.seed,
                             cross_column=args.cross_column, shortlist=args.shortlist,
                             calibration=args.calibration)
    json_path, png = write_results(results, args.out)
    print(_results_table(results))
    print(f"wrote {json_path} and {png}")
    return 0


def _results_table(results: dict[str, Any]) -> str:
    methods = results["methods"]
    lines = [f"{'species':14s} {'method':18s} {'top1':>6s} {'top5':>6s} {'mAP':>6s} {'AUROC':>6s} {'bal.acc':>7s}"]
    for s, entry in results["species"].items():
        for m in methods:
            r = entry[m]
            o = r.get("open_set", {})
            lines.append(f"{s:14s} {m:18s} {r['top1']:6.3f} {r['top5']:6.3f} {r['mAP']:6.3f} "
                         f"{o.get('auroc', float('nan')):6.3f} {o.get('balanced_accuracy', float('nan')):7.3f}")
    return "\n".join(lines)


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the evaluate command to the `reid-hub` parser."""
    DEFAULT_MODEL = default_model
    s = sub.add_parser("evaluate", help="evaluate on unseen identities against baselines", parents=[runtime])
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--data", nargs="+", required=True)
    s.add_argument("--split", help="split.csv of a training run (default: a fresh seeded identity split)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--unseen-fraction", type=float, default=0.3,
                   help="share of identities held out per species; 1 = every identity (zero-shot data)")
    s.add_argument("--methods", help="comma list of: model, imagenet, fused, a matcher (sift, xfeat, aliked-lightglue, "
                                     "...), fused-<matcher> (default model + --baselines)")
    s.add_argument("--shortlist", type=int, help="global candidates re-scored by local matches (fused; default: the "
                                               "matcher's, 100 for SIFT)")
    s.add_argument("--calibration", choices=("isotonic", "logistic"), default="isotonic",
                   help="score -> P(same individual) fit for fused methods")
    s.add_argument("--baselines", default="imagenet,sift", help="comma list of: imagenet, sift")
    s.add_argument("--cross-column", help="never match a query against images sharing this column (e.g. camera)")
    s.add_argument("--imagenet-backbone", default="lite0")
    s.add_argument("--out", default="results/evaluation.json")
    s.set_defaults(func=_cmd_evaluate)

