"""Named matcher configurations, as timm names its models."""
from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError
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


def create_matcher(name: str = DEFAULT_MATCHER, **kwargs: Any) -> LocalMatcher:
    """A matcher by name (one of `MATCHERS`), with its settings overridden by `kwargs`."""
    if name not in MATCHERS:
        raise ConfigError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    return MATCHERS[name](**kwargs)
