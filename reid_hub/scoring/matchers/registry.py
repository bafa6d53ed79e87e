"""Named matcher configurations, as timm names its models."""
from __future__ import annotations

from typing import Any, Callable

from ...errors import ConfigError
from .base import LocalMatcher
from .learned import LightGlueMatcher, XFeatMatcher
from .sift import SiftMatcher

MATCHERS: dict[str, Callable[..., LocalMatcher]] = {
    "sift": SiftMatcher,
    "aliked-lightglue": lambda **kw: LightGlueMatcher("aliked", **kw),
    "disk-lightglue": lambda **kw: LightGlueMatcher("disk", **kw),
    "xfeat": lambda **kw: XFeatMatcher(glue=False, **kw),
    "xfeat-lighterglue": lambda **kw: XFeatMatcher(glue=True, **kw),
}
DEFAULT_MATCHER = "sift"
#: how many global candidates each matcher re-scores by default: its cost per pair decides (SIFT ~1 ms, XFeat
#: ~2-5 ms with mutual nearest neighbours, the LightGlue family ~50-100 ms on 2 CPU cores)
DEFAULT_SHORTLISTS = {"sift": 100, "xfeat": 100, "xfeat-lighterglue": 20, "aliked-lightglue": 20,
                      "disk-lightglue": 20}


#: galleries (or species) up to this many images are verified whole by default: cheap matchers can afford
#: it, and a weak embedding then cannot hide the true match from the verification (lion: 0.43 -> 0.47 top-1)
VERIFY_WHOLE_GALLERY_UP_TO = {"sift": 500, "xfeat": 200}


def default_shortlist(name: str, gallery_size: int = 0) -> int:
    """The default shortlist depth for a matcher (20 for one not listed); the whole gallery when it is small."""
    depth = DEFAULT_SHORTLISTS.get(name, 20)
    whole = VERIFY_WHOLE_GALLERY_UP_TO.get(name, 0)
    return max(depth, gallery_size) if 0 < gallery_size <= whole else depth


def create_matcher(name: str = DEFAULT_MATCHER, **kwargs: Any) -> LocalMatcher:
    """A matcher by name (one of `MATCHERS`), with its settings overridden by `kwargs`."""
    if name not in MATCHERS:
        raise ConfigError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    return MATCHERS[name](**kwargs)
