"""torch.distributed helpers for the streaming metrics; no-ops when not initialised."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["all_gather_objects", "all_reduce_sum", "is_distributed"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over all processes and return the result on ``x``'s device (``x`` if not
    distributed). NCCL needs CUDA tensors, so the sum runs on the current CUDA device there."""
    if not is_distributed():
        return x
    import torch.distributed as dist

    work_device = x.device
    if dist.get_backend() == "nccl" and x.device.type != "cuda":
        work_device = torch.device("cuda", torch.cuda.current_device())
    buf = x.detach().to(work_device).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(x.device)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` in rank order (``[obj]`` if not distributed)."""
    if not is_distributed():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
