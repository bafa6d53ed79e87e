"""Decisions on calibrated probabilities: accept the best candidate, send it to review, or call it new."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError

ACCEPT, REVIEW, NEW = "accept", "review", "new"


@dataclass(frozen=True)
class DecisionBands:
    """P(best) >= accept: accept; P(known) (else P(best)) < new: a new individual; in between: a person reviews
    it. With `auto_accept` off nothing is accepted without a person (Wildbook's way): the accept band reviews."""

    accept: float = 0.9
    new: float = 0.5
    auto_accept: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.new <= self.accept <= 1.0:
            raise ConfigError(f"bands need 0 <= new <= accept <= 1, got new={self.new}, accept={self.accept}")

    def decide(self, probability: float, known: Optional[float] = None) -> str:
        """The decision for a best candidate of P(same) `probability`; `known`, when given, is P(the animal is
        any of the candidates), which decides 'new' instead of the best candidate alone."""
        if probability >= self.accept and self.auto_accept:
            return ACCEPT
        return REVIEW if (probability if known is None else known) >= self.new else NEW


__all__ = ["DecisionBands", "ACCEPT", "REVIEW", "NEW"]
