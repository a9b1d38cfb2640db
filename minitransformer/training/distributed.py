"""Data-parallel training with PyTorch's own tools: torchrun + DistributedDataParallel (DDP).

Nothing home-made: ``torchrun`` starts one process per device and tells each its place through
environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
``init_process_group`` connects them (``gloo`` on CPUs, ``nccl`` on CUDA GPUs); DDP averages the
gradients of all processes during ``backward()``. One machine, two processes::

    torchrun --standalone --nproc_per_node=2 -m minitransformer pretrain gpt --preset cpu

Several machines run the same command, each with its share of processes, pointed at one
rendezvous (any reachable host:port, usually the first machine) by torchrun's flags::

    # on each of 2 machines, 4 GPUs each (--node_rank 0 on the first, 1 on the second):
    torchrun --nnodes=2 --nproc_per_node=4 --node_rank=0 \\
             --rdzv_backend=c10d --rdzv_endpoint=host0.example:29500 --rdzv_id=shakespeare \\
             -m minitransformer pretrain gpt --preset gpu --out /shared/runs/gpt

(the run folder must be on a file system every machine sees, since rank 0 writes the
checkpoints and every rank reads them back on ``--resume``).

Batch semantics do not change with the number of processes: each optimizer step consumes the
same global batch (``batch_size x grad_accum`` sequences); each of the N processes computes
``batch_size / N`` rows of every micro-batch. With gradient accumulation, DDP's all-reduce is
skipped (``model.no_sync()``) on all but the last micro-step, around forward *and* backward.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank among ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_rank() -> int:
    """This process's number on its machine: the GPU it takes (torchrun's LOCAL_RANK, else RANK, else 0)."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", 0)))


def check_one_gpu_each(requested: str, device: torch.device) -> None:
    """Under torchrun with several processes on CUDA, each needs a GPU of its own: ValueError otherwise.

    ``requested`` is the ``--device`` the user gave (``cuda:0`` would stack every process on GPU 0),
    ``device`` what ``resolve_device`` chose for this process.
    """
    if not (launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1 and device.type == "cuda"):
        return
    if ":" in requested:
        raise ValueError(f"--device {requested} under torchrun would put every process on one GPU; "
                         "use --device cuda (or auto): each process takes the GPU of its LOCAL_RANK")
    if local_rank() >= torch.cuda.device_count():
        raise ValueError(f"process with LOCAL_RANK {local_rank()} has no GPU of its own (this machine has "
                         f"{torch.cuda.device_count()}): start at most that many processes per machine")


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group if torchrun (or a test) set the environment; else a single process.

    ``device`` (this process's, from ``resolve_device``) picks the backend: ``nccl`` for CUDA, ``gloo``
    otherwise. On CUDA it also becomes the current device, so NCCL works on the GPU the model is on.
    """
    device = torch.device(device)
    device_type = device.type
    if not launched_by_torchrun():
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=10))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank())


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes train together; else the model."""
    if not info.enabled:
        return model
    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def maybe_no_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()`` (skip the gradient all-reduce) unless ``sync`` or not under DDP."""
    if not sync and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``values`` over all processes (the tensor itself in a single process)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= info.world_size
    return values


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every process (small Python objects, e.g. an error message)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
