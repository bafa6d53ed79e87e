"""Data-parallel training: the one training loop of `reid_hub.training.loop`, run by several processes.

This module is the thin layer around it: who am I (rank, world size), how the processes meet
(`torch.distributed` set up by torchrun or by Ray Train's TorchTrainer; gloo on CPU, NCCL on GPU), and
the two launchers. The loop itself stays in `train.train`, which shards every global batch over the
ranks, averages gradients with DistributedDataParallel and lets rank 0 alone write the run folder.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from ..errors import ConfigError

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


__all__ = ["DistContext", "dist_context", "init_from_env", "local_batch_size", "shard_steps"]
