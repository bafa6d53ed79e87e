"""ONNX Runtime sessions of an embedding model, in float32 or int8.

The graph is exported from the loaded model (every branch, pooling, projection, neck and the L2 norm are
inside it), cached under `$REID_HUB_CACHE/onnx/<fingerprint>[-int8].onnx`, and checked on its first use in
a process against the torch forward on a probe batch of generated images; a graph that disagrees is not
used (the caller falls back, logged).
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import torch
from torch import nn

from ..data.atomic import atomic_path
from ..data.synthetic import coat, photo
from ..resources import cache_dir as shared_cache_dir
from .backends import thread_count

log = logging.getLogger(__name__)

#: a float32 graph is used only when every probe embedding has this cosine to the torch forward's
FP32_MIN_COSINE = 0.9999
#: an int8 graph is used only when every probe embedding has at least this cosine to the torch forward's (0.99 let
#: multispecies-v2's int8 graph through while its top-1 moved by up to 0.012 on the staged species: not offered)
INT8_MIN_COSINE = 0.995
#: ONNX graphs have a fixed batch size (ONNX Runtime runs fixed shapes faster): a batch is padded to the next of
#: these, and a larger one is split
BUCKETS = (1, 2, 4, 8, 16, 32)
#: generated images for the probe batch and the int8 calibration
PROBE_IMAGES = 8
CALIBRATION_IMAGES = 64
OPSET = 17

_LOCK = threading.Lock()
#: what runs instead of a backend whose graph is refused (see ReIDModel.forward_for)
_FALLBACK = {"onnx": "torch", "onnx-int8": "float32 ONNX"}


class Embeddable(Protocol):
    """What a backend needs of a model: its forward, train/eval switch, preprocessing and fingerprint."""

    training: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...
    def eval(self) -> object: ...
    def train(self, mode: bool = True) -> object: ...
    def fingerprint(self) -> str: ...
    def preprocess(self, images: list) -> torch.Tensor: ...


def cache_dir() -> Path:
    """`$REID_HUB_CACHE/onnx` (default ~/.cache/reid-hub/onnx)."""
    return shared_cache_dir() / "onnx"


def generated_images(n: int, first_seed: int) -> list:
    """`n` generated coat photos (reid_hub.data.synthetic), the images a model ships with for probing."""
    return [photo(coat(first_seed + i // 2), first_seed + i) for i in range(n)]


def export_onnx(model: nn.Module, size: int, path: Path, batch: int) -> Path:
    """Write `model`'s forward (batch, 3, size, size) -> (batch, D) as an ONNX graph, atomically. The batch size
    is fixed: ONNX Runtime ran a fixed shape about 1.3x faster than a dynamic batch axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    was = model.training
    model.eval()
    try:
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about the legacy exporter, not about this graph
            torch.onnx.export(model, (torch.zeros(batch, 3, size, size),), str(tmp), input_names=["pixels"],
                              output_names=["embedding"], opset_version=OPSET, dynamo=False)
    finally:
        model.train(was)
    return path


def quantize_int8(fp32: Path, path: Path, calibration: np.ndarray, batch: int = 8) -> Path:
    """Static int8 quantization (QDQ, per-channel weights) of an fp32 graph, calibrated on `calibration`
    (preprocessed batch), written atomically."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([calibration[i:i + batch] for i in range(0, len(calibration) - batch + 1, batch)])

        def get_next(self) -> Optional[dict]:
            b = next(self.batches, None)
            return None if b is None else {"pixels": b}

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(out, path)
    return path


class OnnxEmbedder:
    """An ONNX Runtime session that embeds batches of exactly `batch` images for one model, checked against its
    torch forward."""

    def __init__(self, model: Embeddable, size: int, int8: bool = False, threads: Optional[int] = None,
                 batch: int = 16, fingerprint: Optional[str] = None) -> None:
        import onnxruntime as ort

        self.int8, self.batch = int8, int(batch)
        self.threads = thread_count(threads)
        fp = fingerprint or model.fingerprint()
        root = cache_dir()
        fp32_path = root / f"{fp}-b{self.batch}.onnx"
        with _LOCK:
            if not fp32_path.is_file():
                log.info("exporting the ONNX graph of model %s for batches of %d to %s", fp, self.batch, fp32_path)
                export_onnx(model, size, fp32_path, batch=self.batch)
            self.path = fp32_path
            if int8:
                self.path = root / f"{fp}-b{self.batch}-int8.onnx"
                if not self.path.is_file():
                    log.info("quantizing the ONNX graph of model %s to int8", fp)
                    calib = model.preprocess(generated_images(max(CALIBRATION_IMAGES, self.batch), 7000)).numpy()
                    quantize_int8(fp32_path, self.path, calib, batch=self.batch)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle threads sleep instead of spinning: between batches the CPU decodes and crops the next images
        opts.add_session_config_entry("session.intra_op.allow_spinning", os.environ.get("REID_HUB_ORT_SPIN", "0"))
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.min_cosine = self.probe(model)

    def probe(self, model: Embeddable) -> float:
        """The smallest cosine between this session's and the torch forward's embeddings of the probe batch."""
        imgs = generated_images(PROBE_IMAGES, 9000)
        x = model.preprocess([imgs[i % len(imgs)] for i in range(self.batch)])
        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                ref = model(x).float().numpy()
        finally:
            model.train(was)
        got = self(x.numpy())
        cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
        return float(cos.min())

    @property
    def trusted(self) -> bool:
        """Whether the probe agreed with torch closely enough for this graph to be used."""
        return self.min_cosine >= (INT8_MIN_COSINE if self.int8 else FP32_MIN_COSINE)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Embeddings of up to `self.batch` preprocessed images (a shorter batch is padded, then cut)."""
        n = len(batch)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if n < self.batch:
            x = np.concatenate([x, np.zeros((self.batch - n, *x.shape[1:]), np.float32)])
        return self.session.run(None, {"pixels": x})[0][:n]


def weights_version(model: nn.Module) -> tuple:
    """Changes whenever a weight of `model` is replaced or modified in place (optimizer steps, loads)."""
    return tuple((id(t), t._version) for t in model.state_dict(keep_vars=True).values())


class EngineCache:
    """The ONNX sessions of one model, for one version of its weights; a graph that failed its probe is
    remembered (as None) so the fall back is logged once."""

    def __init__(self) -> None:
        self._engines: dict[tuple, Optional[OnnxEmbedder]] = {}
        self._version: Optional[tuple] = None
        self._fingerprint: Optional[str] = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a copied or pickled model builds its own sessions
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # type: ignore[misc]

    def refresh(self, model: nn.Module) -> None:
        """Forget the sessions when `model`'s weights changed since they were built (call once per embedding)."""
        version = weights_version(model)
        with self._lock:
            if version != self._version:
                self._engines.clear()
                self._version, self._fingerprint = version, None

    def get(self, model: nn.Module, backend: str, size: int, threads: Optional[int] = None, batch: int = 16
            ) -> Optional[Callable[[np.ndarray], np.ndarray]]:
        """The session for `backend` ("onnx" or "onnx-int8") and batches of `batch` images (a power of two),
        or None where another backend must run instead; built on first use for the weights of the last
        `refresh`."""
        with self._lock:
            key = (backend, thread_count(threads), batch)
            if key not in self._engines:
                self._engines[key] = self._build(model, backend, size, threads, batch)
            return self._engines[key]

    def _build(self, model: nn.Module, backend: str, size: int, threads: Optional[int], batch: int
               ) -> Optional[OnnxEmbedder]:
        try:
            if self._fingerprint is None:
                self._fingerprint = model.fingerprint()  # type: ignore[operator]
            eng = OnnxEmbedder(model, size, int8=backend == "onnx-int8", threads=threads,  # type: ignore[arg-type]
                               batch=batch, fingerprint=self._fingerprint)
        except Exception as exc:  # an exporter or runtime failure must never stop embedding
            log.warning("ONNX backend %s unavailable for this model (%s: %s): using %s",
                        backend, type(exc).__name__, exc, _FALLBACK[backend])
            return None
        if not eng.trusted:
            log.warning("ONNX backend %s disagrees with the torch forward on the probe batch (min cosine "
                        "%.6f): using %s", backend, eng.min_cosine, _FALLBACK[backend])
            return None
        return eng


def bucket(n: int) -> int:
    """The fixed batch size that runs `n` images: the smallest bucket holding them (the largest for more)."""
    return next((b for b in BUCKETS if b >= n), BUCKETS[-1])


__all__ = ["BUCKETS", "EngineCache", "OnnxEmbedder", "bucket", "cache_dir", "export_onnx", "generated_images",
           "quantize_int8"]
