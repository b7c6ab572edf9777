"""Training across processes (and machines) with PyTorch's own tools: torchrun starts the processes and
sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous; this module joins them and hands the
trainer what it needs: which rank it is, the device, a barrier, sums over ranks and the model wrapped in
DistributedDataParallel.

Outside torchrun (or under it with one process) the world is a single rank and nothing is initialised:
the same trainer code runs unchanged.

Backends: "nccl" when the run trains on CUDA GPUs (``device`` "cuda", or "auto" with a GPU present),
else "gloo" (CPU; the default). Each rank on a GPU machine uses the GPU ``LOCAL_RANK``.

Waiting for the feature cache: every rank computes its share of the cache before training, which can take
hours on a large dataset, far longer than a collective's timeout (gloo 30 min, nccl 10 min). That wait
(``World.wait_for_all``) goes through a gloo group of its own with a timeout of PREPARE_TIMEOUT; the training's
collectives keep the backend's default, so a rank that hangs mid-training is still noticed.

Extraction processes: each rank starts ``default_extract_workers()`` (the machine's cores shared by its ranks).

Logging: ranks other than 0 log at WARNING and above only (the level of the package logger
``edge_asc``, set here because the ranks are known only once the process group is joined; cli.py still
configures the handlers), so a run's progress is told once.

torch is imported inside the functions: the train command's options (``DEVICES``) are read by every
``edge-asc`` command line, and ``edge-asc run`` on a device never loads torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")  # what --device accepts
TORCHRUN_ENV = "TORCHELASTIC_RUN_ID"  # set by torchrun (torch.distributed.run) in every process it starts
PREPARE_TIMEOUT = timedelta(hours=24)  # the longest a rank waits for the others to fill their share of the cache
_WAIT_GROUP: Any = None  # the gloo group of wait_for_all (made once per process group)


def default_extract_workers() -> int:
    """Feature extraction processes per rank: the machine's cores over the ranks on it (torchrun's
    LOCAL_WORLD_SIZE, else WORLD_SIZE; 1 rank outside torchrun), at least 1."""
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)
    return max(1, (os.cpu_count() or 1) // max(1, ranks_here))


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (python -m torch.distributed.run)."""
    return TORCHRUN_ENV in os.environ


def resolve_device(device: str) -> torch.device:
    """``cpu`` / ``cuda`` / ``auto`` (CUDA when available, else the CPU) -> this rank's torch device."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int  # 0 .. size - 1 over all machines
    size: int  # processes in all (1 = no distribution)
    device: torch.device  # where this rank trains
    wait_group: Any = field(default=None, compare=False, repr=False)  # gloo group with PREPARE_TIMEOUT (several ranks)

    @property
    def is_main(self) -> bool:
        """Rank 0 prepares the cache, writes checkpoints and tells the progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to wait for with one rank)."""
        if self.distributed:
            import torch.distributed as dist

            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def wait_for_all(self) -> None:
        """A barrier that waits up to PREPARE_TIMEOUT (the cache being filled), not a collective's timeout."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=self.wait_group)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of ``values`` over the ranks (float64; ``values`` itself with one rank)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)  # (len(values),)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` on this rank's device, in DistributedDataParallel when there are several ranks
        (gradients averaged over the ranks in backward; rank 0's initial weights broadcast to the others)."""
        module = module.to(self.device)
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


def join(device: str = "cpu") -> World:
    """The world this process trains in: under torchrun with WORLD_SIZE > 1, join the process group (once;
    the rendezvous is torchrun's), else a single rank. ``device``: cpu (default), cuda or auto."""
    import torch
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    where = resolve_device(device)
    if size <= 1:
        return World(0, 1, where)
    if not dist.is_initialized():
        backend = "nccl" if where.type == "cuda" else "gloo"
        if where.type == "cuda":
            torch.cuda.set_device(where)
        dist.init_process_group(backend=backend)
        log.debug("joined the process group: rank %d of %d, backend %s", dist.get_rank(), dist.get_world_size(), backend)
    global _WAIT_GROUP
    if _WAIT_GROUP is None:  # every rank joins here in the same order: new_group is collective
        _WAIT_GROUP = dist.new_group(backend="gloo", timeout=PREPARE_TIMEOUT)
    rank = dist.get_rank()
    if rank != 0:
        logging.getLogger("edge_asc").setLevel(logging.WARNING)
    return World(rank, dist.get_world_size(), where, _WAIT_GROUP)


def leave() -> None:
    """Leave the process group, if this process joined one (at the end of a distributed run)."""
    import torch.distributed as dist

    global _WAIT_GROUP
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _WAIT_GROUP = None
