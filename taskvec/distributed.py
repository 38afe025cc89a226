"""Collection and search across processes with ``torch.distributed`` (started by ``torchrun``).

One process is the default and needs no launcher: :func:`session` then yields a
:class:`Dist` of world size 1 whose collectives do nothing, so the distributed path is
the single-process code. Under ``torchrun`` (the ``env://`` variables ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``) with more than one
process, every rank joins one process group — NCCL with one GPU per rank
(``cuda:LOCAL_RANK``) where CUDA is available, gloo on CPUs — and:

- ``taskvec collect`` shards canvas windows by index (window ``w`` to rank
  ``w % world_size``; windows are generated from ``(seed, w)``, so the canvases do not
  depend on the world size), all-reduces the float64 sums and counts, and rank 0 writes;
- ``taskvec search`` shards every objective call (the K×R rollouts of a REINFORCE step,
  CMA's single-site sets, GRS's moves) into contiguous slices of the K·R (site-set,
  query) pairs and all-gathers the rewards, so every rank takes the same decisions;
  rank 0 writes the vector, curve and sidecar.

Failures end with one line on rank 0 (:func:`cli_session`): a block run under
:meth:`Dist.together` that fails on one rank fails on all of them with that rank's line;
:meth:`Dist.agree` stops ranks that hold different settings or files; a rank that
cannot reach the others, or loses them, gives up after the timeout. Nothing is written
before every rank has agreed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Mapping, TypeVar

import torch
from torch import Tensor

from taskvec.errors import UserError, one_line

DEFAULT_TIMEOUT_S = 600.0  # init and every collective; a rank idle longer than this is taken as lost
LAUNCH_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
F = TypeVar("F", bound=Callable)


class SharedError(UserError):
    """A failure another rank met, shared by :meth:`Dist.together` (every rank raises it)."""


@dataclass(frozen=True)
class LaunchEnv:
    """The launcher's (torchrun's) description of this process."""

    rank: int
    world_size: int
    local_rank: int
    master: str  # "host:port"


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The ``env://`` variables of ``environ`` (default ``os.environ``), or None without a launcher.

    Incomplete or inconsistent variables are a :class:`UserError` (one line)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return None
    missing = [k for k in LAUNCH_KEYS if not env.get(k)]
    if missing:
        raise UserError(f"incomplete launcher environment: {', '.join(missing)} not set (start with torchrun)")
    try:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"]))
    except ValueError:
        raise UserError(f"RANK={env['RANK']!r} / WORLD_SIZE={env['WORLD_SIZE']!r} are not integers") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return LaunchEnv(rank, world, local, f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}")


def _collective(fn: F) -> F:
    """A collective that fails (a peer died or timed out) becomes one line naming this rank."""

    @functools.wraps(fn)
    def wrapper(self: "Dist", *args, **kwargs):
        if not self.active:
            return fn(self, *args, **kwargs)
        try:
            return fn(self, *args, **kwargs)
        except RuntimeError as e:  # DistError, gloo/NCCL timeouts and resets
            raise UserError(f"rank {self.rank}: lost contact with the other ranks ({one_line(e)[:200]})") from None

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size, backend (None: one process), device."""

    rank: int = 0
    world_size: int = 1
    backend: str | None = None
    device: str = "cpu"

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """This rank's contiguous slice ``[lo, hi)`` of ``n`` items (sizes differ by at most 1)."""
        r = self.rank if rank is None else rank
        return n * r // self.world_size, n * (r + 1) // self.world_size

    # ------------------------------------------------------------------ collectives
    @_collective
    def all_reduce_sum_(self, t: Tensor) -> Tensor:
        """Sum ``t`` over ranks, in place; returns ``t``."""
        if self.active:
            import torch.distributed as td

            buf = t.to(self.device)
            td.all_reduce(buf, op=td.ReduceOp.SUM)
            if buf is not t:
                t.copy_(buf)
        return t

    @_collective
    def all_gather_cat(self, t: Tensor, sizes: list[int]) -> Tensor:
        """Concatenate every rank's ``t`` [sizes[rank], …] along dim 0, in rank order."""
        if not self.active:
            return t
        import torch.distributed as td

        m = max(max(sizes), 1)
        pad = torch.zeros((m, *t.shape[1:]), dtype=t.dtype, device=self.device)
        pad[: t.shape[0]] = t.to(self.device)
        parts = [torch.empty_like(pad) for _ in range(self.world_size)]
        td.all_gather(parts, pad)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(t.device)

    @_collective
    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (for decisions taken on rank 0's clock)."""
        if not self.active:
            return flag
        import torch.distributed as td

        t = torch.tensor([int(flag)], device=self.device)
        td.broadcast(t, src=0)
        return bool(t.item())

    @_collective
    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's (small, picklable) ``obj``, in rank order."""
        if not self.active:
            return [obj]
        import torch.distributed as td

        out: list[Any] = [None] * self.world_size
        td.all_gather_object(out, obj)
        return out

    # ------------------------------------------------------------------ agreement
    def agree(self, what: str, value: Mapping[str, Any]) -> None:
        """Check that every rank holds the same ``value`` (a small JSON-able dict), else fail everywhere.

        Ranks that read different files (a stale copy of a means file on another node,
        another image folder) or were started with other arguments end here, before any
        work or output."""
        if not self.active:
            return
        mine = json.loads(json.dumps(value, sort_keys=True, default=str))
        views = self.gather_objects(mine)
        for r, v in enumerate(views[1:], start=1):
            if v != views[0]:
                key = next((k for k in sorted(set(v) | set(views[0])) if v.get(k) != views[0].get(k)), "?")
                raise SharedError(f"ranks disagree on the {what}: rank {r} has {key}={v.get(key)!r}, "
                                  f"rank 0 has {views[0].get(key)!r}")  # fmt: skip

    @contextmanager
    def together(self) -> Iterator[None]:
        """Run a block on every rank; if it fails on any, it fails on all with the first failure's line.

        A rank re-raises its own exception; the others raise :class:`SharedError` with the
        failing rank's line (prefixed ``rank N:`` unless it is rank 0)."""
        if not self.active:
            yield
            return
        err: BaseException | None = None
        try:
            yield
        except Exception as e:  # noqa: BLE001 — shared with the other ranks, then re-raised
            err = e
        msgs = self.gather_objects(None if err is None else one_line(err))
        failed = [(r, m) for r, m in enumerate(msgs) if m is not None]
        if not failed:
            return
        if err is not None:
            raise err
        r, m = failed[0]
        raise SharedError(m if r == 0 else f"rank {r}: {m}")


def digest(t: Tensor) -> str:
    """sha256 of a tensor's bytes (to check that ranks hold identical decisions)."""
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


@contextmanager
def session(timeout_s: float = DEFAULT_TIMEOUT_S, environ: Mapping[str, str] | None = None) -> Iterator[Dist]:
    """Join the launcher's process group for the block (or yield a one-process :class:`Dist`).

    A rank that cannot reach the others within ``timeout_s`` seconds ends with one line
    (:class:`UserError`) naming its rank and the rendezvous address."""
    env = launch_env(environ)
    if env is None or env.world_size == 1:
        yield Dist()
        return
    import torch.distributed as td

    nccl = torch.cuda.is_available() and td.is_nccl_available()
    backend, device = ("nccl", f"cuda:{env.local_rank}") if nccl else ("gloo", "cpu")
    if nccl:
        if env.local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {env.rank}: LOCAL_RANK={env.local_rank} but this node has "
                            f"{torch.cuda.device_count()} GPU(s); start at most that many processes per node")  # fmt: skip
        torch.cuda.set_device(device)
    try:
        td.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                              timeout=timedelta(seconds=timeout_s))  # fmt: skip
    except (RuntimeError, ValueError) as e:
        raise UserError(f"rank {env.rank}: cannot reach the other {env.world_size - 1} rank(s) at {env.master} "
                        f"within {timeout_s:g} s — is every rank started with WORLD_SIZE={env.world_size} and able "
                        f"to reach {env.master}? ({one_line(e)[:160]})") from None  # fmt: skip
    dist = Dist(env.rank, env.world_size, backend, device)
    try:
        yield dist
    finally:
        td.destroy_process_group()


@contextmanager
def cli_session(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Dist]:
    """:func:`session` for a CLI command: once the ranks are connected, rank 0 alone prints errors.

    Bad input fails on every rank alike, or is shared by :meth:`Dist.together`, or makes
    rank 0 lose contact with the failing rank, so rank 0 always has the line to print;
    the other ranks exit with status 2 quietly. (A rank that cannot connect at all says
    so itself.)"""
    with session(timeout_s) as dist:
        try:
            yield dist
        except (UserError, OSError, ValueError):
            if not dist.is_main:
                sys.exit(2)
            raise

