"""Training and fine-tuning of the embedding model with sub-center ArcFace and dynamic margins.

A run lives in one folder: config.json (TrainConfig), split.csv (which identities are unseen),
classes.json, metrics.jsonl, checkpoint.pt (for exact resume) and model/ (the saved model).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.atomic import atomic_path, write_json_atomic
from ..data import tables as rdata
from ..errors import CheckpointError, ConfigError
from ..models.loading import ModelCard, from_pretrained, save_pretrained
from ..models.model import ReIDModel, create_model
from .ddp import dist_context, local_batch_size, shard_steps
from .losses import SubCenterArcFace, dynamic_margins

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """All settings of a training or fine-tuning run."""

    data: list[str]
    out_dir: str
    model: str = "effv2-b0"
    pretrained: bool = False  # offline ImageNet backbone weights, where the config has them
    init_from: Optional[str] = None  # fine-tune: a saved model (folder or released name)
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides, e.g. {"preprocess": {"size": 160}}
    epochs: int = 10
    max_steps: Optional[int] = None
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_mult: float = 0.3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    subcenters: int = 3
    scale: float = 30.0
    margin_a: float = 0.5
    margin_b: float = 0.05
    balanced: bool = False  # class-balanced P x K sampling instead of plain shuffling
    images_per_class: int = 4
    unseen_fraction: float = 0.3
    seed: int = 0
    checkpoint_every: int = 50
    num_workers: int = 0
    device: Optional[str] = None
    amp: bool = True  # mixed precision on CUDA only
    save_dtype: str = "float32"
    exclude_species: list[str] = field(default_factory=list)  # leave-one-species-out: never trained on these
    frozen_blocks: int = 0  # stem + this many backbone stages frozen; their outputs are cached per view
    views: int = 4  # augmented views per image in the trunk cache (with frozen_blocks)
    distill_weight: float = 0.0  # cosine distillation of the pooled features toward the initial backbone
    layer_decay: float = 1.0  # backbone lr x decay^(stages above): lower stages move less
    wise_alpha: float = 1.0  # WiSE-FT: saved backbone = (1 - a) * initial + a * fine-tuned

    def validate(self) -> "TrainConfig":
        if not self.data:
            raise ConfigError("give at least one data source")
        for name in ("epochs", "batch_size", "subcenters", "images_per_class", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.lr <= 0 or self.backbone_lr_mult < 0:
            raise ConfigError("lr must be > 0 and backbone_lr_mult >= 0")
        if not 0 <= self.unseen_fraction < 1:
            raise ConfigError("unseen_fraction must be in [0, 1)")
        if self.frozen_blocks < 0 or (self.frozen_blocks and self.views < 1):
            raise ConfigError("frozen_blocks must be >= 0, and training on frozen blocks needs views >= 1")
        if self.distill_weight < 0 or not 0 < self.layer_decay <= 1 or not 0 <= self.wise_alpha <= 1:
            raise ConfigError("distill_weight must be >= 0, layer_decay in (0, 1] and wise_alpha in [0, 1]")
        return self


def _device(name: Optional[str]) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_split(cfg: TrainConfig, out: Path) -> pd.DataFrame:
    """Load the data and the run's identity split (made once with the seed, then reused)."""
    df = rdata.load_sources(cfg.data)
    split_file = out / "split.csv"
    if split_file.is_file():
        return rdata.apply_split(df, split_file)
    df = rdata.split_by_identity(df, cfg.unseen_fraction, cfg.seed)
    with atomic_path(split_file) as tmp:
        df[["image_id", "dataset", "species", "identity", "split"]].to_csv(tmp, index=False)
    return df


def _build_model(cfg: TrainConfig) -> ReIDModel:
    if cfg.init_from:
        return from_pretrained(cfg.init_from)
    return create_model(cfg.model, pretrained=cfg.pretrained, **dict(cfg.overrides))


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _OffsetSampler(torch.utils.data.Sampler[int]):
    """Wraps an epoch's index list, skipping the first `start` indices (resume inside an epoch)."""

    def __init__(self, indices: list[int], start: int) -> None:
        self.indices, self.start = indices, start

    def __iter__(self):
        return iter(self.indices[self.start:])

    def __len__(self) -> int:
        return len(self.indices) - self.start


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) training; returns the folder of the saved model."""
    cfg.validate()
    ctx = dist_context()  # rank 0 of 1 unless torchrun / Ray Train started a process group
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_cfg = out / "config.json"
    ckpt_file = out / "checkpoint.pt"
    if saved_cfg.is_file() and ckpt_file.is_file():
        prev = json.loads(saved_cfg.read_text())
        if {k: v for k, v in prev.items() if k != "device"} != {k: v for k, v in _cfg_json(cfg).items() if k != "device"}:
            raise CheckpointError(f"{out} holds a run with a different config; use another out_dir")
    ctx.barrier()
    if ctx.is_main:
        write_json_atomic(saved_cfg, _cfg_json(cfg))

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    if ctx.distributed and device.type == "cuda" and cfg.device is None:
        device = torch.device("cuda", torch.cuda.current_device())
    local_batch = local_batch_size(cfg.batch_size, ctx)

    if ctx.is_main:  # rank 0 draws and writes the split; the others read it
        prepare_split(cfg, out)
    ctx.barrier()
    df = prepare_split(cfg, out)
    unknown = sorted(set(cfg.exclude_species) - set(df["species"]))
    if unknown:
        raise ConfigError(f"exclude_species names species the data does not have: {unknown}")
    train_df = df[(df["split"] == "train") & ~df["species"].isin(cfg.exclude_species)].reset_index(drop=True)
    if train_df.empty:
        raise ConfigError("no training images left after the split")
    classes = sorted(train_df["label"].unique())
    if ctx.is_main:
        write_json_atomic(out / "classes.json", classes)

    model = _build_model(cfg).to(device)
    frozen = cfg.frozen_blocks
    if frozen > model.num_blocks:
        raise ConfigError(f"frozen_blocks {frozen} exceeds the {model.num_blocks} stages of {model.config.backbone}")
    # the initial backbone: distillation target and WiSE-FT anchor (deterministic, so a resume rebuilds it)
    initial = copy.deepcopy(model).eval().requires_grad_(False) if (cfg.distill_weight or cfg.wise_alpha < 1) else None
    counts = rdata.class_counts(train_df["label"], classes)
    head = SubCenterArcFace(model.embedding_dim, len(classes), dynamic_margins(counts, cfg.margin_a, cfg.margin_b),
                            k=cfg.subcenters, s=cfg.scale).to(device)
    opt = torch.optim.AdamW(_param_groups(model, head, cfg), weight_decay=cfg.weight_decay)

    if frozen:
        from .trunk_cache import CachedViewsDataset, TrunkCache

        cache = TrunkCache(model, frozen, views=cfg.views, seed=cfg.seed)
        if ctx.is_main:  # rank 0 fills the cache; the others then find every file there
            cache.build(train_df, progress=progress)
        ctx.barrier()
        paths = cache.build(train_df, progress=False)
        index = {c: i for i, c in enumerate(classes)}
        dataset = CachedViewsDataset(paths, [index[lbl] for lbl in train_df["label"]], cfg.views)
    else:
        dataset = rdata.ReIDImageDataset(train_df, model.config.preprocess, classes, augment=True, seed=cfg.seed)
    steps_per_epoch = max(1, len(dataset) // cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, min(cfg.warmup_steps, total // 5 + 1)))
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step = 0
    if ckpt_file.is_file():
        try:
            ck = torch.load(ckpt_file, map_location=device, weights_only=False)
            model.load_state_dict(ck["model"])
            head.load_state_dict(ck["head"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            scaler.load_state_dict(ck["scaler"])
            step = int(ck["step"])
            rng = ck["rng"]
            if isinstance(rng, list):  # one state per rank of a distributed run
                if len(rng) != ctx.world:
                    raise CheckpointError(f"{ckpt_file} was written by {len(rng)} workers, this run has {ctx.world}")
                rng = rng[ctx.rank]
            _set_rng_state(rng)
        except (KeyError, RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"cannot resume from {ckpt_file}: {exc}") from exc
        log.info("resumed %s at step %d", out, step)

    sampler = (rdata.ClassBalancedSampler(dataset.targets, len(dataset), cfg.images_per_class, cfg.seed)
               if cfg.balanced else None)
    metrics_file = (out / "metrics.jsonl").open("a") if ctx.is_main else None
    model.train()
    model.to(memory_format=torch.channels_last)
    step_fn: torch.nn.Module = _TrainStep(model, head, frozen, cfg.distill_weight, initial)
    if ctx.distributed:  # gradients averaged over the ranks; the ArcFace head is replicated like the model
        from torch.nn.parallel import DistributedDataParallel

        step_fn = DistributedDataParallel(step_fn, device_ids=[device.index] if device.type == "cuda" else None)
    bar = tqdm(total=total, initial=step, disable=not (progress and ctx.is_main), desc="train", unit="step")
    t_start = time.time()
    try:
        while step < total:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
                order = list(iter(sampler))
            else:
                order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch)).tolist()
            order = shard_steps(order[: steps_per_epoch * cfg.batch_size], cfg.batch_size, ctx)
            dataset.set_epoch(epoch)
            # a generator of its own keeps the loader from drawing on the global RNG (exact resume)
            loader = DataLoader(dataset, batch_size=local_batch, sampler=_OffsetSampler(order, in_epoch * local_batch),
                                num_workers=cfg.num_workers, drop_last=True, pin_memory=device.type == "cuda",
                                generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
            for x, y in loader:
                t0 = time.time()
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    loss = step_fn(x, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                step += 1
                mean_loss = ctx.mean(loss.detach()).item()  # the loss of the whole global batch
                rec = {"step": step, "epoch": epoch, "loss": round(mean_loss, 5), "lr": opt.param_groups[-1]["lr"],
                       "img_per_s": round(len(x) * ctx.world / max(1e-9, time.time() - t0), 2),
                       "elapsed_s": round(time.time() - t_start, 2)}
                if metrics_file is not None:
                    metrics_file.write(json.dumps(rec) + "\n")
                    metrics_file.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.3f}")
                if step % cfg.checkpoint_every == 0 or step == total:
                    rng = ctx.gather(_rng_state()) if ctx.distributed else _rng_state()
                    if ctx.is_main:
                        _save_checkpoint(ckpt_file, model, head, opt, sched, scaler, step, rng)
                    ctx.barrier()
                if step >= total:
                    break
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
    model.eval()
    model.to(memory_format=torch.contiguous_format)
    if cfg.wise_alpha < 1:
        interpolate_backbone(model, initial, cfg.wise_alpha)
    model_dir = out / "model"
    if ctx.is_main:
        save_pretrained(model.cpu(), model_dir, card=training_card(cfg, df, classes), dtype=cfg.save_dtype)
    ctx.barrier()
    return model_dir


class _TrainStep(torch.nn.Module):
    """One training step's loss: embeddings -> sub-center ArcFace, plus the distillation term; one module
    so that DistributedDataParallel can wrap model and head together."""

    def __init__(self, model: ReIDModel, head: torch.nn.Module, frozen: int, distill_weight: float,
                 initial: Optional[ReIDModel]) -> None:
        super().__init__()
        self.model, self.head, self.frozen, self.distill_weight = model, head, frozen, distill_weight
        self._initial = [initial]  # a list keeps the frozen teacher out of the module's parameters

    def pooled(self, net: ReIDModel, x: torch.Tensor) -> torch.Tensor:
        return net.pooled_from_trunk(x, self.frozen) if self.frozen else net.pooled_features(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        feats = self.pooled(self.model, x)
        emb = self.model.head(feats)
        if self.distill_weight:
            with torch.no_grad():
                target = self.pooled(self._initial[0], x)
        with torch.autocast(x.device.type, enabled=False):  # the margin logits and losses in float32
            loss = self.head.loss(emb.float(), y)
            if self.distill_weight:
                loss = loss + self.distill_weight * (1 - F.cosine_similarity(feats.float(), target.float())).mean()
        return loss


def _param_groups(model: ReIDModel, head: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: the neck and classifier at lr; the backbone at lr x backbone_lr_mult, decayed by
    layer_decay per stage below the top; frozen stages left out."""
    base = cfg.lr * cfg.backbone_lr_mult
    n = model.num_blocks
    depth_of: dict[str, int] = {}  # stages above the parameter's own; the stem sits below stage 0
    for name, _ in model.backbone.named_parameters():
        if name.startswith("blocks."):
            depth_of[name] = n - 1 - int(name.split(".")[1])
        elif name.startswith(("conv_stem.", "bn1.")):
            depth_of[name] = n
        else:
            depth_of[name] = 0
    frozen_prefixes = ("conv_stem.", "bn1.") + tuple(f"blocks.{i}." for i in range(cfg.frozen_blocks))
    groups: dict[int, list[torch.nn.Parameter]] = {}
    for name, p in model.backbone.named_parameters():
        if cfg.frozen_blocks and name.startswith(frozen_prefixes):
            p.requires_grad_(False)
            continue
        groups.setdefault(depth_of[name] if cfg.layer_decay < 1 else 0, []).append(p)
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    other = [p for p in model.parameters() if id(p) not in backbone_ids] + list(head.parameters())
    out = [{"params": ps, "lr": base * cfg.layer_decay ** d} for d, ps in sorted(groups.items())]
    return out + [{"params": other, "lr": cfg.lr}]


def interpolate_backbone(model: ReIDModel, initial: ReIDModel, alpha: float) -> ReIDModel:
    """WiSE-FT in place: every floating backbone tensor becomes (1 - alpha) * initial + alpha * current.
    The projection and neck stay as trained (the initial model has no trained counterpart)."""
    own, ref = model.backbone.state_dict(), initial.backbone.state_dict()
    if own.keys() != ref.keys():
        raise ConfigError("WiSE-FT needs two models of the same backbone")
    mixed = {k: (1 - alpha) * ref[k].to(v.dtype) + alpha * v if v.is_floating_point() else v for k, v in own.items()}
    model.backbone.load_state_dict(mixed)
    return model


def _cfg_json(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg), default=str))


def _save_checkpoint(path: Path, model, head, opt, sched, scaler, step: int, rng: Any = None) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "step": step,
                    "rng": rng if rng is not None else _rng_state()}, tmp)


def training_card(cfg: TrainConfig, df: pd.DataFrame, classes: list[str]) -> ModelCard:
    """A model card describing the data and settings of a run (metrics are added by evaluation)."""
    rows = []
    for (name, species), part in df.groupby(["dataset", "species"]):
        unseen = part[part["split"] == "unseen"]
        rows.append({"name": name, "species": species, "images": len(part),
                     "identities": f"{part['label'].nunique()} ({unseen['label'].nunique()} held out unseen)",
                     "license": "see SOURCE.md of the dataset", "source": name})
    text = (f"{cfg.epochs} epochs (or {cfg.max_steps} steps) of sub-center ArcFace (k={cfg.subcenters}, s={cfg.scale}, "
            f"dynamic margins m = {cfg.margin_a} n^-1/4 + {cfg.margin_b}) over {len(classes)} training identities, "
            f"AdamW lr {cfg.lr} (backbone x{cfg.backbone_lr_mult}), cosine schedule, batch {cfg.batch_size}, "
            f"{'class-balanced sampling, ' if cfg.balanced else ''}identity split seed {cfg.seed}.")
    return ModelCard(training_data=rows, training=text)


def finetune_config(base: str, data: list[str], out_dir: str, **kwargs: Any) -> TrainConfig:
    """Settings for fine-tuning a saved model on new data without its original data:
    a new classifier for the new identities and a lower backbone learning rate."""
    defaults = dict(init_from=base, lr=5e-4, backbone_lr_mult=0.1, epochs=5, warmup_steps=10)
    defaults.update(kwargs)
    return TrainConfig(data=data, out_dir=out_dir, **defaults)


def distill(student: str, teacher: str, data: list[str], out_dir: str | Path, epochs: int = 5,
            batch_size: int = 32, lr: float = 2e-3, seed: int = 0, unseen_fraction: float = 0.3,
            device: Optional[str] = None, progress: bool = False) -> Path:
    """Initialise a from-scratch backbone by feature distillation from an ImageNet teacher.

    The student (registry name, random weights) learns to reproduce, through a linear adapter,
    the pooled features of the teacher (registry name with offline ImageNet weights) on augmented
    training-split images; no identity labels are used. Returns the saved student folder, which
    `TrainConfig(init_from=...)` then trains with ArcFace. Skips the work when the folder exists.
    """
    out = Path(out_dir)
    if (out / "model.safetensors").is_file():
        return out
    torch.manual_seed(seed)
    random.seed(seed)
    dev = _device(device)
    df = rdata.split_by_identity(rdata.load_sources(data), unseen_fraction, seed)
    train_df = df[df["split"] == "train"].reset_index(drop=True)
    t_model = create_model(teacher, pretrained=True).to(dev).eval()
    s_model = create_model(student).to(dev).train()
    adapter = torch.nn.Linear(s_model.feature_dim, t_model.feature_dim).to(dev)
    s_pre, t_pre = s_model.config.preprocess, t_model.config.preprocess
    scale = (torch.tensor(s_pre.std) / torch.tensor(t_pre.std)).view(1, 3, 1, 1).to(dev)
    shift = ((torch.tensor(s_pre.mean) - torch.tensor(t_pre.mean)) / torch.tensor(t_pre.std)).view(1, 3, 1, 1).to(dev)
    params = list(s_model.backbone.parameters()) + list(adapter.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    dataset = rdata.ReIDImageDataset(train_df, s_pre, augment=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    total = epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, max(1, total // 20)))
    log_file = (out.parent / f"{out.name}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    step = 0
    with log_file.open("w") as fh, tqdm(total=total, disable=not progress, desc="distill") as bar:
        for epoch in range(epochs):
            for x, _ in loader:
                x = x.to(dev)
                with torch.no_grad():
                    target = t_model.pooled_features(x * scale + shift)
                pred = adapter(s_model.pooled_features(x))
                loss = (1 - torch.nn.functional.cosine_similarity(pred, target, dim=1)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                fh.write(json.dumps({"step": step, "epoch": epoch, "loss": round(loss.item(), 5)}) + "\n")
                fh.flush()
                bar.update(1)
    s_model.eval()
    return save_pretrained(s_model.cpu(), out, card=ModelCard(
        summary=f"{student} backbone distilled from the ImageNet {teacher} features ({epochs} epochs); "
                "an initialisation for re-ID training, not a re-ID model."))


__all__ = ["TrainConfig", "train", "interpolate_backbone", "finetune_config", "prepare_split", "training_card", "distill"]
