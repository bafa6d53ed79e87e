"""`reid-hub models` and `reid-hub info`: the registered configs, the released models, one model's config."""
from __future__ import annotations

import argparse
import json
from typing import Any


def _cmd_models(args: argparse.Namespace) -> int:
    from ..models.loading import model_table

    rows = model_table()
    cols = ["name", "kind", "alias", "backbone", "input", "weights", "description"]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols[:-1]}
    print("  ".join(c.ljust(width[c]) for c in cols[:-1]) + "  " + cols[-1])
    for r in rows:
        print("  ".join(str(r[c]).ljust(width[c]) for c in cols[:-1]) + "  " + str(r["description"]))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..models.loading import from_pretrained

    model = from_pretrained(args.model)
    info = {"config": model.config.to_dict(), "embedding_dim": model.embedding_dim,
            "parameters": sum(p.numel() for p in model.parameters()), "fingerprint": model.fingerprint()}
    print(json.dumps(info, indent=2))
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the models, info commands to the `reid-hub` parser."""
    DEFAULT_MODEL = default_model
    sub.add_parser("models", help="list registered configs and released models").set_defaults(func=_cmd_models)

    s = sub.add_parser("info", help="show a model's config and fingerprint")
    s.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    s.set_defaults(func=_cmd_info)

