"""What a gallery is configured to do (kept in its meta table; read and changed through `Gallery.settings` and
`Gallery.update_settings`)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from ..scoring.decisions import PolicySettings
from ..scoring.matchers import DEFAULT_MATCHER


@dataclass(frozen=True)
class GallerySettings:
    """What a gallery is configured to do, kept in its meta table (`Gallery.settings`, `Gallery.update_settings`).

    `matcher` (per species: `matcher_by_species`) verifies the shortlist; `shortlist`: candidates re-scored (None:
    the matcher's default); `auto_accept`: decisions taken without a person where the decision policy allows them
    (off by default: every decision is reviewed); `decision_precision` (per species: `..._by_species`): the
    precision an automatic decision must show on held-out individuals, `new_share`: the share of queries assumed to
    be animals not in the gallery; `decision_policy`: the fitted policy per species (scoring.decisions);
    `accept`: an optional floor on P(same) under the policy's accept; `verification` false: enroll without local features;
    `threshold` and `calibration`: the open-set threshold on the global score and its report; `fusion_calibration`:
    the fitted P(same individual) per species; `index_kind`, `auto_threshold`, `index_on_disk`: the FAISS index."""

    threshold: Optional[float] = None
    calibration: Optional[dict] = None
    fusion_calibration: Optional[dict] = None
    matcher: str = DEFAULT_MATCHER
    matcher_by_species: dict = field(default_factory=dict)
    shortlist: Optional[int] = None
    accept: Optional[float] = None
    auto_accept: bool = False
    decision_precision: float = 0.95
    decision_precision_by_species: dict = field(default_factory=dict)
    new_share: float = 0.3
    decision_policy: Optional[dict] = None
    verification: bool = True
    index_kind: str = "flat"
    auto_threshold: int = 100_000
    index_on_disk: bool = False

    def matcher_for(self, species: Optional[str]) -> str:
        """The matcher of a species: its own choice, else the gallery's."""
        return (self.matcher_by_species or {}).get(species or "", self.matcher)

    def policy(self) -> PolicySettings:
        """What the gallery asks of automatic decisions (precision target per species, assumed share of new)."""
        return PolicySettings(self.decision_precision, dict(self.decision_precision_by_species), self.new_share)


SETTING_NAMES = frozenset(f.name for f in fields(GallerySettings))


__all__ = ["GallerySettings", "SETTING_NAMES"]
