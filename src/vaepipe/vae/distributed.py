"""Data-parallel training on processes that torchrun started: every process holds the whole model and computes the
gradient of its share of each global batch; one all-reduce of the flat gradient makes it the global batch's.

Every process draws the whole batch's random numbers from the same seeded stream and keeps its share, so a run on
any number of processes sees the data, the binarisation and the noise of a one-process run; only the order of the
floating-point sums differs. gloo carries the sums on a CPU, NCCL on GPUs (one per process).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vaepipe.core.errors import PipelineError

PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: `rank` of `size` (alone: 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """The process that logs and writes the outputs."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This process's rows of a batch of `n`: contiguous, sizes differing by at most one."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the processes, in place (every process gets the same bytes)."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Overwrite `tensor` with process 0's, in place."""
        if self.size > 1:
            dist.broadcast(tensor, src=0)

    def require_same(self, tensor: torch.Tensor, what: str) -> None:
        """Fail unless `tensor` holds the same bytes in every process, as the replicas of one model must."""
        if self.size == 1:
            return
        main = tensor.clone()
        self.broadcast(main)
        if not torch.equal(main, tensor):
            raise PipelineError(f"{what} differs between process 0 and process {self.rank} of {self.size}")


@contextlib.contextmanager
def joined(device: torch.device) -> Iterator[tuple[World, torch.device]]:
    """This process's World and device: alone on `device`, or, under torchrun (WORLD_SIZE > 1), in its process
    group, on GPU LOCAL_RANK when `device` is CUDA. Leaves the group on exit."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield World(), device
        return
    _die_with_parent()
    if device.type == "cuda":
        local_rank, gpus = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if int(os.environ["LOCAL_WORLD_SIZE"]) > gpus:
            raise PipelineError(f"{os.environ['LOCAL_WORLD_SIZE']} processes on this machine but {gpus} CUDA GPU(s): "
                                "one GPU a process (lower `train.nproc`, or set `device: cpu`)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield World(dist.get_rank(), size), device
    finally:
        dist.destroy_process_group()


def _die_with_parent() -> None:
    """Have Linux kill this process when torchrun's process dies, even by SIGKILL: a killed stage then stops
    whole, its checkpoint left for the next run, rather than leaving processes that train on and write outputs."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
