"""Distributed data-parallel (DDP) training: process group, BatchNorm sync, local launcher.

Two ways to run N processes:

* ``torchrun --nproc-per-node N -m pixelwise.cli.main train ...`` (or any launcher that
  sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): the
  trainer reads these variables through :func:`context_from_env`;
* ``pixelwise train --nproc N``: :func:`launch` spawns N local processes with
  :func:`torch.multiprocessing.spawn`, sets the same variables, and returns rank 0's result.

Backend: ``nccl`` for CUDA, ``gloo`` otherwise. ``batch_size`` is per process, so the global
batch is ``batch_size * N``; each process sees its own shard of every epoch
(:class:`~pixelwise.data.loader.SeededSampler`).

BatchNorm: under DDP every BatchNorm2d is converted so its batch statistics are computed
over the global batch (``torch.nn.SyncBatchNorm`` on CUDA; :class:`CpuSyncBatchNorm` on CPU,
where PyTorch's SyncBatchNorm is not implemented). N processes then compute the same
update as one process with the global batch (up to float rounding), as the test
``tests/training/test_distributed.py`` checks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "CpuSyncBatchNorm",
    "DistContext",
    "all_reduce_sum",
    "broadcast_flag",
    "cleanup_distributed",
    "context_from_env",
    "convert_sync_batchnorm",
    "free_port",
    "init_distributed",
    "launch",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 .. world_size - 1).
        local_rank: rank on this machine (selects the CUDA device).
        world_size: number of processes.
        backend: ``"gloo"`` / ``"nccl"`` once initialised, else None.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes files and prints)."""
        return self.rank == 0


def context_from_env(env: Mapping[str, str] | None = None) -> DistContext:
    """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (torchrun's variables); defaults: one process.

    Raises:
        ValueError: a variable is not an int or the ranks are out of range.
    """
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"RANK / LOCAL_RANK / WORLD_SIZE must be integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank} WORLD_SIZE={world}")
    return DistContext(rank=rank, local_rank=local, world_size=world)


def init_distributed(device_type: str = "cpu", env: Mapping[str, str] | None = None) -> DistContext:
    """Join the process group described by the environment (no-op for one process).

    Args:
        device_type: ``"cuda"`` selects nccl, anything else gloo.
        env: variables to read (default ``os.environ``); ``MASTER_ADDR`` / ``MASTER_PORT``
            must be set in ``os.environ`` for the env:// rendezvous.

    Returns:
        The context, with ``backend`` set when a group was joined.
    """
    ctx = context_from_env(env)
    if not ctx.enabled:
        return ctx
    if dist.is_initialized():
        return DistContext(ctx.rank, ctx.local_rank, ctx.world_size, dist.get_backend())
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
    return DistContext(ctx.rank, ctx.local_rank, ctx.world_size, backend)


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes, in place (identity without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_flag(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Rank 0's value of ``flag`` on every process (e.g. a stop decision)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------- BatchNorm sync
class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch normalisation over the global batch, with the analytic backward.

    Follows the arithmetic of PyTorch's CPU BatchNorm kernels (float64 accumulation of
    ``sum x``, ``sum (x - mean)^2``, ``sum dy`` and ``sum dy (x - mean)``; output
    ``x * alpha + beta``), with the sums all-reduced over the processes, so N processes
    reproduce one process with the global batch to float rounding. The input gradient is
    the one of the global mean loss scaled by the world size, which DDP's gradient
    averaging expects (the formula of :class:`torch.nn.SyncBatchNorm`).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        dims = (0, 2, 3)
        channels = x.shape[1]
        stats = torch.empty(channels + 1, dtype=torch.float64, device=x.device)
        stats[:channels] = x.sum(dim=dims, dtype=torch.float64)
        stats[channels] = x.numel() // channels
        dist.all_reduce(stats)
        count = float(stats[channels].item())
        mean = stats[:channels] / count
        sq = (x.double() - mean.view(1, -1, 1, 1)).square_().sum(dim=dims)
        dist.all_reduce(sq)
        var = sq / count
        invstd = torch.rsqrt(var + eps)
        alpha = invstd if weight is None else invstd * weight.double()
        beta = -mean * alpha if bias is None else bias.double() - mean * alpha
        out = x * alpha.to(x.dtype).view(1, -1, 1, 1) + beta.to(x.dtype).view(1, -1, 1, 1)
        ctx.save_for_backward(x, mean.to(x.dtype), invstd.to(x.dtype), weight)
        ctx.count = count
        total = stats[channels:].clone()
        ctx.mark_non_differentiable(mean, var, total)
        return out, mean, var, total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *unused: Any) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, mean, invstd, weight = ctx.saved_tensors
        dims = (0, 2, 3)
        centred = x - mean.view(1, -1, 1, 1)
        local = torch.stack([grad_out.sum(dim=dims, dtype=torch.float64), (grad_out * centred).sum(dim=dims, dtype=torch.float64)])
        grad_weight = grad_bias = None
        if weight is not None:
            grad_weight = (local[1] * invstd.double()).to(grad_out.dtype) if ctx.needs_input_grad[1] else None
            grad_bias = local[0].to(grad_out.dtype) if ctx.needs_input_grad[2] else None
        total = local.clone()
        dist.all_reduce(total)
        n = ctx.count
        k = (total[1] * invstd.double() * invstd.double() / n).to(x.dtype).view(1, -1, 1, 1)
        grad_mean = (total[0] / n).to(x.dtype).view(1, -1, 1, 1)
        scale = invstd if weight is None else invstd * weight
        grad_input = (grad_out - grad_mean - centred * k) * scale.view(1, -1, 1, 1)
        return grad_input, grad_weight, grad_bias, None


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, on any device.

    In training mode under an initialised process group (more than one process), the
    per-channel statistics are all-reduced in float64 and the backward uses the global
    sums as :class:`torch.nn.SyncBatchNorm` does (which PyTorch implements for GPUs only);
    running statistics are updated with the global mean and unbiased variance. Otherwise
    it is a plain :class:`torch.nn.BatchNorm2d`. Inputs ``(B, C, H, W)``.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Module naming
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        out, mean, var, count = _SyncBatchNormFunction.apply(input, self.weight, self.bias, self.eps)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum  # type: ignore[arg-type]
                total = float(count)
                unbiased = var * (total / max(total - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return out


def convert_sync_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Replace every BatchNorm2d so it uses global-batch statistics under DDP.

    CUDA: :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`; other devices:
    :class:`CpuSyncBatchNorm` (same parameters and buffers, same state-dict keys).

    Returns:
        The model (modified in place where possible).
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        if type(module) is nn.BatchNorm2d:
            new = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            tensors = list(module.parameters()) + list(module.buffers())
            return new.to(tensors[0].device) if tensors else new
        for name, child in module.named_children():
            setattr(module, name, convert(child))
        return module

    return convert(model)


# ----------------------------------------------------------------------- local launcher
def _worker(local_rank: int, nproc: int, port: int, config: dict[str, Any], resume: str | None, threads: int, queue: Any) -> None:
    """Body of one spawned process: set torchrun's variables, train, hand back rank 0's result."""
    os.environ.update(
        {
            "RANK": str(local_rank),
            "LOCAL_RANK": str(local_rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(threads)
    from pixelwise.training.config import TrainConfig
    from pixelwise.training.trainer import train

    result = train(TrainConfig.from_dict(config), resume=resume)
    if local_rank == 0:
        queue.put(result.to_dict())


def launch(config: Any, nproc: int, resume: str | None = None) -> Any:
    """Run :func:`~pixelwise.training.trainer.train` in ``nproc`` local processes (DDP).

    Each process gets ``max(1, cores // nproc)`` torch threads, ``RANK = LOCAL_RANK`` =
    its index, ``WORLD_SIZE = nproc`` and a free ``MASTER_PORT`` on 127.0.0.1.

    Args:
        config: a :class:`~pixelwise.training.config.TrainConfig` (its ``nproc`` is ignored).
        nproc: number of processes (>= 1; 1 trains in this process).
        resume: run folder to resume, or None.

    Returns:
        Rank 0's :class:`~pixelwise.training.trainer.TrainResult`.
    """
    from pixelwise.training.trainer import TrainResult, train

    if nproc <= 1:
        return train(config, resume=resume)
    if context_from_env().enabled:
        from pixelwise.training.config import ConfigError

        raise ConfigError(f"--nproc {nproc} inside a launcher that already set WORLD_SIZE; use one or the other")
    import torch.multiprocessing as mp

    cores = os.cpu_count() or 1
    threads = max(1, cores // nproc)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(
        _worker,
        args=(nproc, free_port(), config.to_dict(), None if resume is None else str(resume), threads, queue),
        nprocs=nproc,
        join=True,
    )
    return TrainResult.from_dict(queue.get())
