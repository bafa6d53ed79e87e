"""The re-identification embedding model: a timm backbone, GeM pooling and a BN neck.

Models are created by name (`create_model`) from the registry of `ModelConfig`s in `models.configs` (timm style)
and are plain `nn.Module`s whose whole configuration is data, saved beside the weights.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import timm
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard as HubModelCard
from huggingface_hub import PyTorchModelHubMixin
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..data.atomic import atomic_path
from ..data.imaging import ImageLike, preprocess
from ..errors import ConfigError, ModelMismatchError
from .backends import resolve_backend, thread_count
from .card import ModelCard, render_card
from .configs import FIELDS_SINCE_V1, ModelConfig, get_model_config
from .imagenet import load_imagenet_backbone
from .onnx_engine import BUCKETS, EngineCache, bucket

log = logging.getLogger(__name__)

class GeM(nn.Module):
    """Generalized-mean pooling with a learnable exponent p."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


def join_general(emb: torch.Tensor, general: torch.Tensor, weight: float) -> torch.Tensor:
    """Re-ID embeddings joined with general features (both unit length, the general part times `weight`),
    then L2-normalized."""
    return F.normalize(torch.cat([F.normalize(emb, dim=1), weight * F.normalize(general, dim=1)], dim=1), dim=1)


class GeneralBranch(nn.Module):
    """Frozen copy of an EfficientNet-style backbone's stages from `blocks` on, its head conv and a fixed
    GeM (p = 3): the general (ImageNet) features of a trunk output."""

    def __init__(self, backbone: nn.Module, blocks: int) -> None:
        super().__init__()
        import copy

        self.blocks = int(blocks)
        self.stages = copy.deepcopy(backbone.blocks[blocks:])
        self.conv_head = copy.deepcopy(backbone.conv_head)
        self.bn2 = copy.deepcopy(backbone.bn2)
        self.requires_grad_(False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        was = self.training
        self.eval()  # always the ImageNet statistics
        try:
            f = self.bn2(self.conv_head(self.stages(h)))
        finally:
            self.train(was)
        return f.clamp(min=1e-6).pow(3).mean(dim=(-2, -1)).pow(1 / 3)


class ReIDModel(nn.Module, PyTorchModelHubMixin, library_name="reid-hub", tags=["animal-reidentification"]):
    """Embedding network: backbone feature map -> GeM/avg pool -> [linear] -> BatchNorm1d -> L2 norm.

    Parameter names follow the public MiewID model (`backbone.*`, `pooling.p`, `bn.*`).
    """

    def __init__(self, config: ModelConfig | dict) -> None:
        super().__init__()
        cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(dict(config))
        self.config = cfg
        self._hub_mixin_config = cfg
        self.save_dtype: Optional[torch.dtype] = None
        self._engines = EngineCache()
        pool_kw = {} if cfg.pooling == "backbone" else {"global_pool": ""}
        try:
            self.backbone = timm.create_model(
                cfg.backbone, pretrained=False, num_classes=0, drop_path_rate=cfg.drop_path_rate, **pool_kw
            )
        except RuntimeError as exc:
            raise ConfigError(f"timm has no backbone {cfg.backbone!r}: {exc}") from exc
        self.feature_dim = int(self.backbone.num_features)
        self.pooling: nn.Module = {"gem": lambda: GeM(cfg.gem_p), "avg": lambda: nn.AdaptiveAvgPool2d(1),
                                   "backbone": nn.Identity}[cfg.pooling]()
        out = self.feature_dim
        if cfg.embedding_dim is not None:
            self.proj: Optional[nn.Linear] = nn.Linear(self.feature_dim, int(cfg.embedding_dim), bias=False)
            out = int(cfg.embedding_dim)
        else:
            self.proj = None
        self.bn: nn.Module = nn.BatchNorm1d(out) if cfg.neck else nn.Identity()
        self.reid_dim = out  # the re-ID branch's part of the embedding
        self.general: Optional[GeneralBranch] = None
        if cfg.general_blocks is not None:
            self.general = GeneralBranch(self.backbone, int(cfg.general_blocks))
            out += self.feature_dim
        self.embedding_dim = out

    def attach_general_branch(self, blocks: int, weight: float = 1.0) -> "ReIDModel":
        """Add (or replace) the frozen general branch as a copy of the current backbone's stages from
        `blocks` on: call it while those stages hold the ImageNet weights (or pass them by load_weights)."""
        if not 1 <= blocks <= self.num_blocks:
            raise ConfigError(f"general_blocks must be in [1, {self.num_blocks}], got {blocks}")
        self.config.general_blocks, self.config.general_weight = int(blocks), float(weight)
        self.general = GeneralBranch(self.backbone, int(blocks)).to(next(self.parameters()).device)
        self.embedding_dim = self.reid_dim + self.feature_dim
        return self

    # -- forward ---------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        """Number of stages in the backbone's `blocks` (0 for backbones without that layout)."""
        blocks = getattr(self.backbone, "blocks", None)
        return len(blocks) if isinstance(blocks, nn.Sequential) else 0

    def trunk(self, x: torch.Tensor, blocks: int) -> torch.Tensor:
        """Feature map after the stem and the first `blocks` stages of an EfficientNet-style backbone."""
        b = self.backbone
        if not 0 <= blocks <= self.num_blocks:
            raise ConfigError(f"blocks must be in [0, {self.num_blocks}] for {self.config.backbone}, got {blocks}")
        return b.blocks[:blocks](b.bn1(b.conv_stem(x)))

    def pooled_from_trunk(self, h: torch.Tensor, blocks: int) -> torch.Tensor:
        """Pooled backbone features of a trunk output `h` = `trunk(x, blocks)`."""
        b = self.backbone
        return self.pooling(b.bn2(b.conv_head(b.blocks[blocks:](h)))).flatten(1)

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (before the projection and neck)."""
        return self.pooling(self.backbone(x)).flatten(1)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Embeddings of pooled backbone features: projection, BN neck, L2 norm."""
        f = self.proj(pooled) if self.proj is not None else pooled
        f = self.bn(f)
        return F.normalize(f, dim=1) if self.config.normalize else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of a preprocessed batch (N, 3, S, S), L2-normalized when the config says so."""
        if self.general is None:
            return self.head(self.pooled_features(x))
        h = self.trunk(x, self.general.blocks)
        return self.with_general(self.head(self.pooled_from_trunk(h, self.general.blocks)), self.general(h))

    def with_general(self, emb: torch.Tensor, general: torch.Tensor) -> torch.Tensor:
        """The re-ID embedding joined with the general branch's features at the configured weight."""
        return join_general(emb, general, self.config.general_weight)

    # -- inference -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Turn images (paths, PIL, arrays) into one input batch, using the saved preprocessing."""
        items = _as_list(images)
        return torch.stack([preprocess(im, self.config.preprocess) for im in items])

    def forward_for(self, backend: Optional[str] = None, threads: Optional[int] = None
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The function that embeds a preprocessed batch with `backend` ("auto", "torch", "onnx",
        "onnx-int8"; None: $REID_HUB_BACKEND or auto), falling back as `reid_hub.models.backends` says: an int8 graph
        that fails its probe runs as fp32 ONNX, an fp32 one as torch. ONNX graphs have fixed batch sizes
        (`onnx_engine.BUCKETS`): a batch is padded to the next one, or split."""
        name = resolve_backend(backend, self.device.type)
        dev = self.device

        def torch_forward(x: torch.Tensor) -> torch.Tensor:
            x = x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                return self(x).float().cpu()

        if name == "torch":
            return torch_forward
        self._engines.refresh(self)

        def onnx_forward(x: torch.Tensor) -> torch.Tensor:
            out = []
            for part in x.split(BUCKETS[-1]):
                engine = self._session(name, threads, bucket(len(part)))[1]
                out.append(torch_forward(part) if engine is None else torch.from_numpy(engine(part.numpy())))
            return torch.cat(out) if out else torch_forward(x)
        return onnx_forward

    def _session(self, name: str, threads: Optional[int], batch: int
                 ) -> tuple[str, Optional[Callable[[np.ndarray], np.ndarray]]]:
        """The backend that runs batches of `batch` for the resolved ONNX backend `name`, and its session:
        int8 falls back to float32 ONNX, float32 ONNX to torch (None)."""
        for candidate in ("onnx-int8", "onnx") if name == "onnx-int8" else ("onnx",):
            engine = self._engines.get(self, candidate, self.config.preprocess.size, threads, batch)
            if engine is not None:
                return candidate, engine
        return "torch", None

    def backend_name(self, backend: Optional[str] = None) -> str:
        """The backend that `embed(backend=...)` runs ("torch", "onnx" or "onnx-int8"), judged by its graph for
        batches of 16."""
        name = resolve_backend(backend, self.device.type)
        if name == "torch":
            return name
        self._engines.refresh(self)
        return self._session(name, None, 16)[0]

    @torch.inference_mode()
    def embed(
        self,
        images: ImageLike | Sequence[ImageLike] | torch.Tensor,
        batch_size: int = 16,
        progress: bool = False,
        backend: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> np.ndarray:
        """Embeddings (float32, shape (N, D)) of images: paths, PIL images, uint8 arrays, or a
        float tensor (N, 3, S, S) that is already a preprocessed batch. `backend`: see `forward_for`;
        images are decoded and resized by a small thread pool ahead of the forward."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            run = self.forward_for(backend, threads)
            if isinstance(images, torch.Tensor) and images.is_floating_point() and images.ndim == 4:
                batches: Iterable[torch.Tensor] = images.split(batch_size)
                total = (len(images) + batch_size - 1) // batch_size
                out = [run(b) for b in tqdm(batches, total=total, disable=not progress, desc="embed", unit="batch")]
            else:
                items = _as_list(images)
                out = [run(b) for b in tqdm(self._prefetched(items, batch_size, thread_count(threads)),
                                            total=(len(items) + batch_size - 1) // batch_size,
                                            disable=not progress, desc="embed", unit="batch")]
            if not out:
                return np.zeros((0, self.embedding_dim), dtype=np.float32)
            return torch.cat(out).numpy().astype(np.float32, copy=False)
        finally:
            if was_training:
                self.train()

    def _prefetched(self, items: list, batch_size: int, workers: int) -> Iterator[torch.Tensor]:
        """Preprocessed batches of `items`, decoded by `workers` threads up to two batches ahead."""
        cfg = self.config.preprocess
        if len(items) <= 1 or workers <= 1:
            for i in range(0, len(items), batch_size):
                yield self.preprocess(items[i:i + batch_size])
            return
        with ThreadPoolExecutor(max_workers=min(workers, 4), thread_name_prefix="reid-hub-decode") as pool:
            pending: deque = deque()
            nxt = 0
            for start in range(0, len(items), batch_size):
                while nxt < min(len(items), start + 3 * batch_size):
                    pending.append(pool.submit(preprocess, items[nxt], cfg))
                    nxt += 1
                n = min(batch_size, len(items) - start)
                yield torch.stack([pending.popleft().result() for _ in range(n)])

    @torch.inference_mode()
    def describe(self, x: torch.Tensor, raw_features: bool = False) -> np.ndarray:
        """Descriptors (float32) of a preprocessed batch: the embeddings, or with `raw_features` the
        L2-normalized pooled backbone features (what a frozen-backbone baseline clusters)."""
        if not raw_features:
            return self.embed(x, batch_size=max(1, len(x)))
        was_training = self.training
        self.eval()
        try:
            x = x.to(self.device).contiguous(memory_format=torch.channels_last)
            return F.normalize(self.pooled_features(x).float(), dim=1).cpu().numpy()
        finally:
            self.train(was_training)

    def fingerprint(self) -> str:
        """Short sha256 of the config and every weight, identifying exactly this model."""
        cfg = {k: v for k, v in self.config.to_dict().items()
               if not (k in FIELDS_SINCE_V1 and v == FIELDS_SINCE_V1[k])}  # stable for models saved before them
        h = hashlib.sha256(repr(sorted(cfg.items())).encode())
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- Hugging Face mixin hooks ----------------------------------------------------------
    def generate_model_card(self, card: Optional[ModelCard] = None, template: Optional[str | Path] = None,
                            **_: Any) -> HubModelCard:
        """The model card every save path writes: model_cards/TEMPLATE.md rendered with this model and `card`."""
        return HubModelCard(render_card(self, card or ModelCard(), template))

    def _save_pretrained(self, save_directory: Path) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.save_dtype is not None:
            state = {k: v.to(self.save_dtype) if v.is_floating_point() else v for k, v in state.items()}
        with atomic_path(Path(save_directory) / "model.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "reid_hub_model": self.config.name})

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: Optional[str] = None, cache_dir: Any = None,
                         force_download: bool = False, local_files_only: bool = False, token: Any = None,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs: Any) -> "ReIDModel":
        if "config" not in model_kwargs:
            raise ModelMismatchError(f"{model_id}: no config.json with a reid-hub model config")
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, "model.safetensors")
        else:
            from huggingface_hub import hf_hub_download

            weights = hf_hub_download(repo_id=model_id, filename="model.safetensors", revision=revision,
                                      cache_dir=cache_dir, force_download=force_download, token=token,
                                      local_files_only=local_files_only)
        if not os.path.isfile(weights):
            raise ModelMismatchError(f"{model_id}: model.safetensors is missing")
        model.load_weights(read_safetensors(weights, device=map_location), strict=strict)
        return model

    def load_weights(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Load a state dict, casting dtypes; missing, unexpected or misshapen tensors are a ModelMismatchError."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        bad = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
        if bad or (strict and (missing or unexpected)):
            raise ModelMismatchError(
                f"weights do not fit model {self.config.name!r}: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}, wrong shape {bad[:5]}"
            )
        self.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items() if k in own}, strict=strict)


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a truncated or corrupt file is a ModelMismatchError naming it."""
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelMismatchError(f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}") from exc


def _as_list(images: Any) -> list:
    if isinstance(images, (str, Path, bytes)) or not isinstance(images, (list, tuple)):
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            return list(images)
        return [images]
    return list(images)


def create_model(name: str, pretrained: bool | str = False, **overrides: Any) -> ReIDModel:
    """Build the registered model `name`.

    pretrained: False for random weights; True for the offline ImageNet backbone weights the
    config names; or a path to a saved model folder / safetensors file to load.
    `overrides` replace config fields (e.g. embedding_dim=256, preprocess={"size": 160}).
    """
    cfg = get_model_config(name, **overrides)
    model = ReIDModel(cfg)
    if pretrained is True:
        if not cfg.imagenet_weights:
            raise ConfigError(f"model {name!r} has no offline ImageNet weights; use pretrained=False or a path")
        load_imagenet_backbone(model.backbone, cfg.imagenet_weights)
    elif isinstance(pretrained, (str, Path)) and pretrained:
        path = Path(pretrained)
        file = path / "model.safetensors" if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"no weights at {file}")
        model.load_weights(read_safetensors(file))
    return model


def load_miewid_weights(model: ReIDModel, state: dict[str, torch.Tensor] | str | Path) -> ReIDModel:
    """Load a MiewID checkpoint (state dict or .bin/.safetensors path) into a `miewid-msv2` model.

    The classifier head (`final.*`) and temperature of the training model are dropped.
    """
    if isinstance(state, (str, Path)):
        p = str(state)
        state = read_safetensors(p) if p.endswith(".safetensors") else torch.load(p, map_location="cpu", weights_only=True)
    cleaned = {}
    for k, v in state.items():
        k = k[len("model."):] if k.startswith("model.") else k
        if k.startswith(("final.", "temperature")):
            continue
        cleaned[k] = v
    model.load_weights(cleaned)
    return model


__all__ = ["ReIDModel", "GeM", "GeneralBranch", "create_model", "load_miewid_weights", "read_safetensors"]
