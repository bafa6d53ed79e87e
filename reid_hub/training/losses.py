"""Losses: sub-center ArcFace with dynamic (class-size dependent) margins, as in MiewID, and the
SigLIP-style sigmoid pair loss of the per-video clustering head."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def dynamic_margins(class_counts: Sequence[int], a: float = 0.5, b: float = 0.05) -> torch.Tensor:
    """Per-class margins m_c = a * n_c ** -1/4 + b: rare classes get larger margins."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 1).any():
        raise ConfigError("class_counts must be a non-empty list of counts >= 1")
    return torch.tensor(a * counts ** -0.25 + b, dtype=torch.float32)


class SubCenterArcFace(nn.Module):
    """Additive angular margin head with k sub-centres per class and a margin per class.

    logits[i, c] = s * cos(theta_ic + m_c) for the true class c of sample i, s * cos(theta_ic)
    otherwise, where cos(theta_ic) is the largest cosine over class c's k sub-centres.
    """

    def __init__(self, embedding_dim: int, num_classes: int, margins: torch.Tensor | float = 0.3,
                 k: int = 3, s: float = 30.0) -> None:
        super().__init__()
        if num_classes < 1 or k < 1:
            raise ConfigError("num_classes and k must be at least 1")
        self.num_classes, self.k, self.s = int(num_classes), int(k), float(s)
        self.weight = nn.Parameter(torch.empty(num_classes * k, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        m = torch.full((num_classes,), float(margins)) if not torch.is_tensor(margins) else margins.float()
        if m.shape != (num_classes,):
            raise ConfigError(f"margins must have one value per class ({num_classes}), got {tuple(m.shape)}")
        self.register_buffer("margins", m.clone())

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, C) cosine of each embedding to the nearest sub-centre of each class."""
        cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))
        return cos.view(-1, self.num_classes, self.k).amax(dim=2)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the margin applied to each sample's true class."""
        cos = self.cosine(embeddings).float().clamp(-1 + 1e-7, 1 - 1e-7)
        m = self.margins[labels].unsqueeze(1)
        cos_y = cos.gather(1, labels.unsqueeze(1))
        sin_y = torch.sqrt(1.0 - cos_y * cos_y)
        phi = cos_y * torch.cos(m) - sin_y * torch.sin(m)  # cos(theta + m)
        # beyond theta + m > pi, cos(theta + m) stops being monotone: fall back to a linear penalty
        phi = torch.where(cos_y > torch.cos(math.pi - m), phi, cos_y - torch.sin(math.pi - m) * m)
        logits = cos.scatter(1, labels.unsqueeze(1), phi)
        return logits * self.s

    def loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the margin logits."""
        return F.cross_entropy(self(embeddings, labels), labels)


class SigmoidPairLoss(nn.Module):
    """Sigmoid binary cross-entropy over labelled pairs, with learnable temperature and bias (SigLIP).

    For a similarity s_ij and label y_ij in {+1 (same animal), -1 (different), 0 (unknown)}:
    loss = sum_ij w_ij * log(1 + exp(-y_ij * (t * s_ij + b))) / sum_ij w_ij, where t = exp(log_t).
    Pairs with y = 0 or weight 0 do not count.
    """

    def __init__(self, init_temperature: float = 10.0, init_bias: float = -5.0) -> None:
        super().__init__()
        if init_temperature <= 0:
            raise ConfigError("the initial temperature must be positive")
        self.log_t = nn.Parameter(torch.tensor(math.log(init_temperature)))
        self.bias = nn.Parameter(torch.tensor(float(init_bias)))

    def logits(self, sim: torch.Tensor) -> torch.Tensor:
        """t * s + b: the log-odds that a pair shows the same animal."""
        return self.log_t.exp() * sim + self.bias

    def forward(self, sim: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Mean weighted loss over the labelled pairs of `sim` (any shape; `labels` the same shape)."""
        if sim.shape != labels.shape:
            raise ConfigError(f"similarities {tuple(sim.shape)} and labels {tuple(labels.shape)} differ in shape")
        w = (labels != 0).float() if weights is None else weights * (labels != 0).float()
        total = w.sum()
        if total <= 0:
            return sim.sum() * 0.0
        return (w * F.softplus(-labels.float() * self.logits(sim))).sum() / total


__all__ = ["SubCenterArcFace", "SigmoidPairLoss", "dynamic_margins"]
