"""The per-video self-supervised projection head (seed 000) and its pair labels.

Frozen descriptors of detections go through a small head; random pairs of frames are labelled by
the Hungarian assignment between their detections (same animal / different animal), detections of
one frame are always different animals, and optionally unambiguous IoU links between nearby frames
are extra positives (seed 001). The head learns with the sigmoid pair loss (SigLIP).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..training.losses import SigmoidPairLoss
from .kmeans import constrained_assign, kmeans

log = logging.getLogger(__name__)


@dataclass
class HeadConfig:
    """How the head is built and trained. `epochs` passes over the frames (each frame once as the
    first of a pair per epoch), at least `min_steps` batches (short or sparse videos have few frames,
    but many frame pairs) and at most `max_steps`."""

    hidden_dim: int = 512
    out_dim: int = 128
    epochs: int = 20
    min_steps: int = 200
    max_steps: int = 2000
    pairs_per_batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hungarian: bool = True
    pseudo_labels: str = "prototypes"
    temporal: bool = False
    temporal_gap: int = 1
    iou_threshold: float = 0.5
    confidence_weighting: bool = True
    min_match_similarity: Optional[float] = None
    recluster_every: int = 10
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.out_dim < 2 or self.hidden_dim < 1:
            raise ConfigError("head dimensions must be positive (out_dim >= 2)")
        if self.epochs < 1 or self.max_steps < 1 or self.pairs_per_batch < 1 or self.min_steps < 0:
            raise ConfigError("epochs, max_steps and pairs_per_batch must be at least 1, min_steps at least 0")
        if not (self.hungarian or self.temporal):
            raise ConfigError("the head needs a training signal: hungarian and/or temporal")
        if self.pseudo_labels not in ("prototypes", "pairwise"):
            raise ConfigError("pseudo_labels is 'prototypes' (needs k) or 'pairwise'")
        if not 0 < self.iou_threshold <= 1 or self.temporal_gap < 1:
            raise ConfigError("iou_threshold lies in (0, 1] and temporal_gap >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class ProjectionHead(nn.Module):
    """z = normalize(P x + MLP(x - mean)); P starts as the projection on the principal directions of the
    video's descriptors and the MLP's last layer at zero, so training starts from the frozen features'
    own cosine geometry (P is applied to uncentred x: centring first would change that geometry)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    @torch.no_grad()
    def init_from(self, x: np.ndarray, seed: int = 0) -> None:
        """Centre on the descriptors' mean and start P at their top principal directions."""
        rng = np.random.default_rng(seed)
        sample = np.asarray(x[np.sort(rng.choice(len(x), min(len(x), 20000), replace=False))], dtype=np.float64)
        mean = sample.mean(axis=0)
        centred = sample - mean
        _, vecs = np.linalg.eigh(centred.T @ centred)  # eigh of the scatter matrix: robust to duplicates
        vt = vecs[:, ::-1].T
        p = np.zeros((self.linear.out_features, sample.shape[1]), dtype=np.float32)
        n = min(len(vt), len(p))
        p[:n] = vt[:n]
        self.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.linear.weight.copy_(torch.from_numpy(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x) + self.mlp(x - self.mean), dim=1)

    @torch.inference_mode()
    def project(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """Head outputs (N, out_dim) float32 of descriptors, in batches (x may be a memory map)."""
        dev = next(self.parameters()).device
        out = [self(torch.from_numpy(np.array(x[i:i + batch_size], dtype=np.float32)).to(dev)).cpu().numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.linear.out_features), np.float32)


def hungarian_pair_labels(sim: np.ndarray, min_similarity: Optional[float] = None) -> np.ndarray:
    """Labels (+1 same, -1 different, 0 unknown) of the detection pairs of two frames from the optimal
    one-to-one assignment on their similarity matrix (na, nb)."""
    sim = np.asarray(sim, dtype=np.float64)
    labels = np.zeros(sim.shape, dtype=np.int8)
    if sim.size == 0:
        return labels
    rows, cols = linear_sum_assignment(-sim)
    for r, c in zip(rows, cols):
        if min_similarity is not None and sim[r, c] < min_similarity:
            continue
        labels[r, :] = np.where(labels[r, :] == 1, 1, -1)
        labels[:, c] = np.where(labels[:, c] == 1, 1, -1)
        labels[r, c] = 1
    return labels


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prototype_labels(logits: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Pseudo-identity (0..k-1, or -1 when a frame has more detections than k) of each row: within each
    frame, the optimal one-to-one assignment of its detections to the k identity prototypes."""
    ids = np.full(len(logits), -1, dtype=np.int64)
    for g in groups:
        r, c = linear_sum_assignment(-logits[g])
        ids[g[r]] = c
    return ids


def _fit_prototypes(z: np.ndarray, groups: Sequence[np.ndarray], k: int, seed: int,
                    warm: Optional[np.ndarray] = None) -> np.ndarray:
    """Identity prototypes (k, d) by constrained k-means on projections z: from a fresh k-means and, when
    given, from the `warm` prototypes; the start with the better objective (mean similarity of each
    detection to its centre under the per-frame constraint) wins."""
    best, best_fit = None, -np.inf
    for start in ([warm] if warm is not None else []) + [kmeans(z, k, n_init=3, seed=seed)]:
        labels, _ = constrained_assign(z, groups, start, iters=10)  # refines `start` in place
        fit = float((z * start[labels]).sum(axis=1).mean())
        if fit > best_fit:
            best, best_fit = start, fit
    return best


def train_head(descriptors: np.ndarray, groups: Sequence[np.ndarray], config: HeadConfig = HeadConfig(),
               k: Optional[int] = None, scores: Optional[np.ndarray] = None,
               links: Optional[Sequence[tuple[int, int]]] = None, identities: Optional[np.ndarray] = None,
               progress: bool = False) -> tuple[ProjectionHead, dict]:
    """Train a head on one video's descriptors; returns it and a training log.

    `groups` are the row indices of each frame's detections. Pseudo-labels (config.pseudo_labels):
    "prototypes" assigns each frame's detections one-to-one to k learnable identity prototypes
    (Hungarian) and labels every pair of the batch same/different by those identities, plus each
    detection against the prototypes; "pairwise" matches the detections of two frames to each other
    (needs no k). Within a frame, pairs are always "different". `scores` weight the pairs by detection
    confidence; `links` are IoU temporal positives (used when config.temporal). With `identities`
    (a label per row, None/-1 for unlabelled) the head is trained on true labels (the baseline).
    """
    groups = [np.asarray(g) for g in groups if len(g)]
    if len(groups) < 2:
        raise DataError("the head needs detections on at least two frames")
    use_protos = identities is None and config.hungarian and config.pseudo_labels == "prototypes"
    if use_protos and (k is None or k < 1):
        raise ConfigError("prototype pseudo-labels need k, the number of animals")
    if config.temporal and not links and identities is None:
        log.warning("temporal positives asked for but no IoU link was found; training without them")
    dev = _device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    head = ProjectionHead(descriptors.shape[1], config.hidden_dim, config.out_dim)
    head.init_from(descriptors, seed=config.seed)
    head.to(dev)
    loss_fn = SigmoidPairLoss().to(dev)
    params = list(head.parameters()) + list(loss_fn.parameters())
    protos = proto_loss = None
    if use_protos:
        init_groups = groups if len(groups) <= 4000 else \
            [groups[i] for i in np.sort(rng.choice(len(groups), 4000, replace=False))]  # bounded memory
        init_rows = np.concatenate(init_groups)
        local_groups = np.split(np.arange(len(init_rows)), np.cumsum([len(g) for g in init_groups])[:-1])
        start = _fit_prototypes(head.project(descriptors[init_rows]), local_groups, k, config.seed)
        protos = nn.Parameter(torch.from_numpy(start).to(dev))
        proto_loss = SigmoidPairLoss().to(dev)
        params += [protos] + list(proto_loss.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = min(config.max_steps, max(config.min_steps, config.epochs * max(1, len(groups) // config.pairs_per_batch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    frame_of_row = np.empty(len(descriptors), dtype=np.int64)
    for gi, g in enumerate(groups):
        frame_of_row[g] = gi
    link_arr = np.asarray(links if (config.temporal and links) else [], dtype=np.int64).reshape(-1, 2)
    conf = np.ones(len(descriptors), np.float32) if scores is None or not config.confidence_weighting \
        else np.clip(np.asarray(scores, np.float32), 0.0, 1.0)
    sampled_groups = groups
    if identities is not None:
        ident = np.asarray(identities, dtype=object)
        sampled_groups = [g for g in groups if all(v is not None and v != -1 for v in ident[g])]
        if len(sampled_groups) < 2:
            raise DataError("supervised head: fewer than two frames have labels")
    log_rows = []
    t0 = time.perf_counter()
    head.train()
    for step in tqdm(range(steps), disable=not progress, desc="head", unit="step"):
        if use_protos and config.recluster_every and step and step % config.recluster_every == 0:
            head.eval()  # re-cluster the current projections: fresh prototypes fight confirmation bias
            best = _fit_prototypes(head.project(descriptors[init_rows]), local_groups, k, config.seed + step,
                                   warm=F.normalize(protos.detach(), dim=1).cpu().numpy().copy())
            with torch.no_grad():
                protos.copy_(torch.from_numpy(best).to(dev))
            head.train()
        frames_a, frames_b, kinds = [], [], []
        n_temporal = (config.pairs_per_batch // 2) if len(link_arr) else 0
        for _ in range(config.pairs_per_batch - n_temporal):
            a, b = rng.choice(len(sampled_groups), 2, replace=False)
            frames_a.append(sampled_groups[a])
            frames_b.append(sampled_groups[b])
            kinds.append("random")
        for li in rng.choice(len(link_arr), n_temporal, replace=True) if n_temporal else []:
            i, j = link_arr[li]
            frames_a.append(groups[frame_of_row[i]])
            frames_b.append(groups[frame_of_row[j]])
            kinds.append("iou")
        batch_groups = [g for pair in zip(frames_a, frames_b) for g in pair]
        rows = np.concatenate(batch_groups)
        local, pos = [], 0
        for g in batch_groups:
            local.append(np.arange(pos, pos + len(g)))
            pos += len(g)
        sort = np.argsort(rows, kind="stable")
        x = torch.from_numpy(np.asarray(descriptors[rows[sort]], dtype=np.float32))  # sorted reads suit memory maps
        z = torch.empty(len(rows), head.linear.out_features, device=dev)
        z = z.index_copy(0, torch.from_numpy(sort).to(dev), head(x.to(dev)))
        sim = z @ z.T
        y = np.zeros((len(rows), len(rows)), dtype=np.int8)
        c = torch.from_numpy(conf[rows]).to(dev)
        loss_extra = torch.zeros((), device=dev)
        if identities is not None:
            lab = ident[rows]
            y[:] = np.where(lab[:, None] == lab[None, :], 1, -1)
        elif use_protos:
            pn = F.normalize(protos, dim=1)
            plogits = z @ pn.T
            ids = prototype_labels(plogits.detach().cpu().numpy(), local)
            known = ids >= 0
            y[:] = np.where(ids[:, None] == ids[None, :], 1, -1)
            y[~known, :] = 0
            y[:, ~known] = 0
            yp = np.where(np.arange(k)[None, :] == ids[:, None], 1, -1).astype(np.int8)
            yp[~known] = 0
            loss_extra = proto_loss(plogits, torch.from_numpy(yp).to(dev), c[:, None].expand(-1, k))
        else:
            sim_np = sim.detach().cpu().numpy()
            for p_i in range(len(frames_a)):
                ia, ib = local[2 * p_i], local[2 * p_i + 1]
                if kinds[p_i] == "random" and config.hungarian:
                    block = hungarian_pair_labels(sim_np[np.ix_(ia, ib)], config.min_match_similarity)
                    y[np.ix_(ia, ib)] = block
                    y[np.ix_(ib, ia)] = block.T
        for p_i, kind in enumerate(kinds):
            ia, ib = local[2 * p_i], local[2 * p_i + 1]
            if kind == "iou" and identities is None:  # IoU links are the most reliable positives: they win
                block = _link_labels(frames_a[p_i], frames_b[p_i], link_arr)
                sub = y[np.ix_(ia, ib)]
                sub = np.where(block != 0, block, sub)
                y[np.ix_(ia, ib)] = sub
                y[np.ix_(ib, ia)] = sub.T
        for idx in local:  # one frame never shows the same animal twice
            y[np.ix_(idx, idx)] = -1
        np.fill_diagonal(y, 0)
        loss = loss_fn(sim, torch.from_numpy(y).to(dev), c[:, None] * c[None, :]) + loss_extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log_rows.append({"step": step, "loss": loss.item(), "t": loss_fn.log_t.exp().item(),
                             "b": loss_fn.bias.item()})
    head.eval()
    info = {"prototypes": None if protos is None else F.normalize(protos.detach(), dim=1).cpu().numpy(),
            "steps": steps, "seconds": time.perf_counter() - t0, "log": log_rows,
            "same_animal_threshold": float(-loss_fn.bias.item() / loss_fn.log_t.exp().item()),
            "config": config.to_dict()}
    return head, info


def _link_labels(a: np.ndarray, b: np.ndarray, links: np.ndarray) -> np.ndarray:
    """Labels of two frames' detection pairs from IoU links: linked pairs +1, the rest of a linked
    detection's row and column -1, everything else unknown."""
    block = np.zeros((len(a), len(b)), dtype=np.int8)
    pos_a = {int(r): i for i, r in enumerate(a)}
    pos_b = {int(r): j for j, r in enumerate(b)}
    mask = np.isin(links[:, 0], a) & np.isin(links[:, 1], b)
    for i, j in links[mask]:
        ia, jb = pos_a[int(i)], pos_b[int(j)]
        block[ia, :] = np.where(block[ia, :] == 1, 1, -1)
        block[:, jb] = np.where(block[:, jb] == 1, 1, -1)
        block[ia, jb] = 1
    return block
