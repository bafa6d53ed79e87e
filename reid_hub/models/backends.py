"""Which inference backend embeds, and with how many threads: the torch forward, or the same network run
by ONNX Runtime in float32 or int8 (`reid_hub.models.onnx_engine`). `auto` is ONNX Runtime on CPU when it is
installed, torch on CUDA. Settings come from the call, the CLI's --backend / --threads, or the environment.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
#: environment variables: the default backend and intra-op thread count of every embedding
ENV_BACKEND = "REID_HUB_BACKEND"
ENV_THREADS = "REID_HUB_THREADS"


@dataclass(frozen=True)
class Runtime:
    """Process-wide defaults of inference: backend name and intra-op threads (None: from the environment)."""

    backend: Optional[str] = None
    threads: Optional[int] = None


_DEFAULTS = Runtime()


def validate_backend(name: str) -> str:
    """`name` if it is a backend name, else a ConfigError listing them."""
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def set_runtime(backend: Optional[str] = None, threads: Optional[int] = None) -> Runtime:
    """Set the process-wide backend and ONNX Runtime thread count (the CLI's --backend / --threads); returns
    the old ones. (torch's own thread count is torch.set_num_threads.)"""
    global _DEFAULTS
    if backend is not None:
        validate_backend(backend)
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    old, _DEFAULTS = _DEFAULTS, Runtime(backend, threads)
    return old


def current_runtime() -> Runtime:
    """The process-wide backend and thread count in force (see set_runtime)."""
    return _DEFAULTS


def thread_count(threads: Optional[int] = None) -> int:
    """Intra-op threads: `threads`, else the --threads default, $REID_HUB_THREADS, $OMP_NUM_THREADS (which Ray
    sets per actor), else the CPUs this process may run on."""
    for value in (threads, _DEFAULTS.threads, os.environ.get(ENV_THREADS), os.environ.get("OMP_NUM_THREADS")):
        if value not in (None, ""):
            try:
                n = int(value)
            except ValueError:
                raise ConfigError(f"thread count must be an integer, got {value!r}") from None
            if n >= 1:
                return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(requested: Optional[str], device: str) -> str:
    """The backend that runs: `requested`, else the process default, else $REID_HUB_BACKEND, else auto;
    auto is onnx on CPU when onnxruntime is installed and torch otherwise. An ONNX backend asked for
    without onnxruntime, or for a model on a GPU, runs torch (logged)."""
    name = validate_backend(requested or _DEFAULTS.backend or os.environ.get(ENV_BACKEND) or "auto")
    if name == "torch":
        return name
    if device != "cpu":
        if name != "auto":
            log.info("backend %s runs on CPU only; the model is on %s: using torch", name, device)
        return "torch"
    if not onnxruntime_available():
        if name != "auto":
            log.warning("backend %s needs onnxruntime, which is not installed: using torch", name)
        return "torch"
    return "onnx" if name == "auto" else name


__all__ = ["BACKENDS", "ENV_BACKEND", "ENV_THREADS", "Runtime", "current_runtime", "onnxruntime_available", "resolve_backend",
           "set_runtime", "thread_count", "validate_backend"]
