"""Argument types and the shared --backend/--threads options of the `reid-hub` commands."""
from __future__ import annotations

import argparse
from typing import Any

from ..models.backends import BACKENDS


def checked(cast: Any, ok: Any, rule: str) -> Any:
    """An argparse type: `cast` the text, then refuse values for which `ok` is false, saying `rule`."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(rule)
        return value
    return parse


positive_int = checked(int, lambda v: v >= 1, "must be at least 1")
non_negative_int = checked(int, lambda v: v >= 0, "must be at least 0")
non_negative_float = checked(float, lambda v: v >= 0 and v == v and v != float("inf"), "must be a finite number, 0 or more")
unit_share = checked(float, lambda v: 0 <= v < 1, "lies in [0, 1)")
probability = checked(float, lambda v: 0 <= v <= 1, "a probability lies in [0, 1]")
open_unit = checked(float, lambda v: 0 < v < 1, "lies strictly between 0 and 1")


def row_list(text: str) -> list[int]:
    """Comma-separated row numbers (0 or more each): "3,7,12"."""
    try:
        rows = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of row numbers") from None
    if not rows or min(rows) < 0:
        raise argparse.ArgumentTypeError("rows are numbers 0 or more, separated by commas")
    return rows


def on_off(text: str) -> bool:
    if text.lower() not in ("on", "off", "true", "false", "1", "0"):
        raise argparse.ArgumentTypeError("on or off")
    return text.lower() in ("on", "true", "1")


def runtime_parser() -> argparse.ArgumentParser:
    """The parent parser of every command that embeds: --backend and --threads."""
    runtime = argparse.ArgumentParser(add_help=False)
    runtime.add_argument("--backend", choices=BACKENDS, help="inference backend (default: $REID_HUB_BACKEND or "
                         "auto: ONNX Runtime on CPU when installed, torch on a GPU)")
    runtime.add_argument("--threads", type=positive_int, help="intra-op threads of the forward (default: "
                         "$REID_HUB_THREADS, $OMP_NUM_THREADS, or every CPU)")
    return runtime
