"""The `reid-hub` command line: one module per command group (`cmd_models`, `cmd_embed`, `cmd_train`, `cmd_evaluate`,
`cmd_serve`, `cmd_gallery`, `cmd_review`, `cmd_video`, `cmd_discover`,
`cmd_population`) and `args` (argument types checked at the edge).

Every expected failure prints one `error: ...` line on stderr and exits with the code of its
error type (see reid_hub.errors); unexpected ones exit 70.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from ..errors import ReidHubError
from ..models.backends import set_runtime
from . import (cmd_discover, cmd_embed, cmd_evaluate, cmd_gallery, cmd_models, cmd_population, cmd_review, cmd_serve,
               cmd_train, cmd_video)
from .args import runtime_parser

log = logging.getLogger("reid_hub.cli")
GROUPS = (cmd_models, cmd_embed, cmd_train, cmd_evaluate, cmd_serve, cmd_gallery, cmd_discover, cmd_review, cmd_video,
          cmd_population)


def build_parser() -> argparse.ArgumentParser:
    """The `reid-hub` parser with every command group's subcommands."""
    from .. import __version__
    from ..resources import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="reid-hub", description="Multi-species animal re-identification.")
    p.add_argument("--version", action="version", version=f"reid-hub {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)
    runtime = runtime_parser()
    for group in GROUPS:
        group.add_parsers(sub, runtime, DEFAULT_MODEL)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `reid-hub` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "backend", None) or getattr(args, "threads", None):
        set_runtime(args.backend, args.threads)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except ReidHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly, with the type, and a distinct code
        log.debug("unexpected error", exc_info=True)
        print(f"internal error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 70


__all__ = ["build_parser", "main"]
