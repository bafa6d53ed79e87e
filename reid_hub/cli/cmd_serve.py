"""`reid-hub serve` and `reid-hub demo`: the web service (REST API + Gradio UI) and the demo on the shipped video."""
from __future__ import annotations

import argparse
from typing import Any

from .args import non_negative_int, positive_int


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..app.demo import run_demo

    if args.frames is None and args.start is None:
        print(run_demo(args.model))
    else:  # --frames alone keeps its first meaning: the first N frames of the clip
        print(run_demo(args.model, frames=args.frames or 1500, start=args.start or 0))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..app.ui import main as serve

    argv = ["--model", args.model, "--port", str(args.port), "--host", args.host]
    for flag, value in (("--gallery", args.gallery), ("--token", args.token), ("--discovery", args.discovery)):
        if value:
            argv += [flag, value]
    serve(argv)
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the serve, demo commands to the `reid-hub` parser."""
    DEFAULT_MODEL = default_model
    s = sub.add_parser("serve", help="start the REST API + Gradio UI", parents=[runtime])
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--gallery", help="gallery folder (default: the demo gallery, built on first start)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--token", help="bearer token required by write endpoints")
    s.add_argument("--discovery", help="an output folder of reid-hub discover: serve its pair questions")
    s.set_defaults(func=_cmd_serve)

    s = sub.add_parser("demo", help="run the default model on the shipped demo video", parents=[runtime])
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--frames", type=positive_int, help="frames of the demo clip to use from --start (default: "
                   "frames 750-1249, which run in under a minute on 2 cores; --frames alone: the first N; 1500: all)")
    s.add_argument("--start", type=non_negative_int, help="first frame used (with --frames)")
    s.set_defaults(func=_cmd_demo)
