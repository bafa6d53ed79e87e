"""Ray Train launcher: `train.train` in every worker of a TorchTrainer (DDP; gloo on CPU, NCCL on GPU)."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from .loop import TrainConfig, train


def _ray_worker(config: dict[str, Any]) -> None:
    from ray import train as ray_train

    cfg = TrainConfig(**config["train"])
    rank = ray_train.get_context().get_world_rank()
    train(cfg, progress=config.get("progress", False) and rank == 0)


def train_on_ray(cfg: Any, workers: int, gpus_per_worker: float = 0.0, ray_address: Optional[str] = None,
                 progress: bool = False) -> Path:
    """Run `train(cfg)` under Ray Train's TorchTrainer with `workers` processes (DDP; gloo on CPU, NCCL
    on GPU). `ray_address` joins a running cluster ('auto'); by default a local Ray starts. Returns the
    saved model folder, written by rank 0 on the run folder (shared storage on a cluster)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if workers < 1:
        raise ConfigError("workers must be at least 1")
    out = Path(cfg.out_dir).resolve()
    conf = {**asdict(cfg), "out_dir": str(out)}
    conf["data"] = [str(Path(d).resolve()) for d in cfg.data]
    if cfg.init_from and Path(cfg.init_from).exists():
        conf["init_from"] = str(Path(cfg.init_from).resolve())
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False,
                 **({} if ray_address else {"num_cpus": max(workers, os.cpu_count() or 1)}))
    use_gpu = gpus_per_worker > 0
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"train": conf, "progress": progress},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": 1, **({"GPU": gpus_per_worker} if use_gpu else {})}),
        run_config=RunConfig(name=out.name, storage_path=str(out.parent / ".ray_results")),
    )
    trainer.fit()
    model_dir = out / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise ConfigError(f"the Ray run ended without a saved model in {model_dir}")
    return model_dir


__all__ = ["train_on_ray"]
