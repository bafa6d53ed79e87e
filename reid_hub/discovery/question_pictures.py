"""The pictures shown with a question: a pair's two images side by side with their verified keypoint matches,
and a group question's images as a numbered grid with the neighbouring groups beside it."""
from __future__ import annotations

import io

from typing import Optional, Sequence

from PIL import Image, ImageDraw

from ..data.tables import read_sample
from ..errors import ConfigError
from ..scoring.matchers import create_matcher
from ..scoring.matchers.drawing import draw_matches, png_bytes
from .session import Discovery

#: the side of one image in a group picture, in pixels
TILE = 160


def pair_evidence(d: Discovery, a: int, b: int, matcher: str = "sift", caption: Optional[str] = None) -> bytes:
    """PNG of rows `a` and `b` of the collection with their RANSAC-verified matches drawn."""
    n = len(d.table)
    for r in (a, b):
        if not 0 <= int(r) < n:
            raise ConfigError(f"row {r} is not in this collection of {n} rows")
    rows = d.table.iloc[[int(a), int(b)]].to_dict("records")
    imgs = [read_sample(r) for r in rows]
    m = create_matcher(matcher)
    fa, fb = m.extract(imgs[0]), m.extract(imgs[1])
    match = m.match(fa, fb)
    return png_bytes(draw_matches(imgs[0], imgs[1], fa, fb, match, caption=caption))


def group_grid(d: Discovery, rows: Sequence[int], beside: Sequence[int] = (), columns: int = 6) -> bytes:
    """PNG of a group question: its images numbered 1..n (the keys that select them), then, after a gap, one image
    of each neighbouring group lettered A, B, ... (the merge choices)."""
    n = len(d.table)
    for r in list(rows) + list(beside):
        if not 0 <= int(r) < n:
            raise ConfigError(f"row {r} is not in this collection of {n} rows")
    if not rows:
        raise ConfigError("a group picture needs at least one image")
    tiles = [(str(k + 1), int(r)) for k, r in enumerate(rows)] + [(chr(65 + k), int(r)) for k, r in enumerate(beside)]
    top = (len(rows) + columns - 1) // columns
    lines = top + ((len(beside) + columns - 1) // columns if beside else 0)
    sheet = Image.new("RGB", (columns * TILE, lines * TILE + (12 if beside else 0)), "white")
    draw = ImageDraw.Draw(sheet)
    records = d.table.iloc[[r for _, r in tiles]].to_dict("records")
    for k, ((label, _), rec) in enumerate(zip(tiles, records)):
        mine = k < len(rows)
        pos = k if mine else k - len(rows)
        x, y = (pos % columns) * TILE, (pos // columns + (0 if mine else top)) * TILE + (0 if mine else 12)
        img = read_sample(rec).convert("RGB")
        img.thumbnail((TILE - 6, TILE - 6))
        sheet.paste(img, (x + 3, y + 3))
        draw.rectangle([x + 3, y + 3, x + 27, y + 23], fill="black" if mine else "#1f5fbf")
        draw.text((x + 8, y + 6), label, fill="white")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["pair_evidence", "group_grid"]

