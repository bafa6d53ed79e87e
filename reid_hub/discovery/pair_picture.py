"""The picture shown with a pair question: the two images side by side with their verified keypoint matches."""
from __future__ import annotations

from typing import Optional

from ..data.tables import read_sample
from ..errors import ConfigError
from ..scoring.matchers import create_matcher
from ..scoring.matchers.drawing import draw_matches, png_bytes
from .session import Discovery


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


__all__ = ["pair_evidence"]
