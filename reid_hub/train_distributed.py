"""Data-parallel training: the one training loop of `reid_hub.train`, run by several processes.

This module is the thin layer around it: who am I (rank, world size), how the processes meet
(`torch.distributed` set up by torchrun or by Ray Train's TorchTrainer; gloo on CPU, NCCL on GPU), and
the two launchers. The loop itself stays in `train.train`, which shards every global batch over the
ranks, averages gradients with DistributedDataParallel and lets rank 0 alone write the run folder.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist

from .errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over all ranks."""
        if not self.distributed:
            return value
        v = value.detach().clone()
        dist.all_reduce(v, op=dist.ReduceOp.SUM)
        return v / self.world

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def dist_context() -> DistContext:
    """The context of the current process group, if any."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def init_from_env(device: Optional[str] = None) -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR...); a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist_context()


def local_batch_size(global_batch: int, ctx: DistContext) -> int:
    """Each rank's share of a global batch (which must divide evenly, so one step sees the same images
    whatever the number of workers)."""
    if global_batch % ctx.world:
        raise ConfigError(f"batch_size {global_batch} does not split evenly over {ctx.world} workers")
    return global_batch // ctx.world


def shard_steps(order: list[int], batch_size: int, ctx: DistContext) -> list[int]:
    """This rank's indices: for every global batch of `order`, its contiguous slice of it."""
    b = local_batch_size(batch_size, ctx)
    steps = len(order) // batch_size
    return [i for s in range(steps) for i in order[s * batch_size + ctx.rank * b: s * batch_size + (ctx.rank + 1) * b]]


def _ray_worker(config: dict[str, Any]) -> None:
    from ray import train as ray_train

    from .train import TrainConfig, train

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


__all__ = ["DistContext", "dist_context", "init_from_env", "local_batch_size", "shard_steps", "train_on_ray"]
