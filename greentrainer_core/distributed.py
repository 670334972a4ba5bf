"""One job on several devices: data-parallel training with torch.distributed (DDP).

Every rank holds the whole model and builds the same global batch (the job's ``batch_size``,
the same seed); each trains on its share of the rows (``torch.tensor_split`` by rows) under
`DistributedDataParallel`, which averages the gradients. Each rank's loss is weighted by its
share of the global batch's label tokens, so the averaged gradient and the reported loss are
those of one process on the whole batch (NB: equal up to floating-point summation order).

Per epoch the selection is decided once, on rank 0 (importance probe and the knapsack), and
broadcast; every rank then applies the same trainable set. DDP is re-wrapped whenever that set
changes, because its reducer buckets exactly the parameters that require a gradient at
construction. The optimizer is the single-device trainer's (`greentrainer_core.train`): a
tensor that leaves the selection gets no gradient, so AdamW leaves its moments and step count
as they are, and resumes from them when the tensor re-enters, on every rank alike.

Validation (``validation=``, for the validation loss and early stopping) runs on every rank on
the whole validation set, with the weights every rank shares; rank 0's loss is broadcast so
that every rank stops early after the same epoch.

Executed FLOPs are counted on each rank and summed over ranks (`sum_over_ranks`, also what a
caller uses for energy). Processes are started with torch.multiprocessing (spawn): `launch`
runs every rank in a child; `rank_zero_here` makes the calling process rank 0 and spawns the
others, so a caller (a Celery worker) keeps its lease, heartbeats, carbon decisions and database
writes in its own process and reads rank 0's events directly, where torchrun would need a
launcher process tree of its own and a way back for the events (and for rho decisions).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from greentrainer_core.config import EpochRecord, Event, RhoSchedule, StepEvent, TrainConfig
from greentrainer_core.data import Example
from greentrainer_core.hf_types import PreTrainedLM
from greentrainer_core.partial import set_lr_scale
from greentrainer_core.train import Trainer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label of a token that does not count (prompt, padding)
DEFAULT_TIMEOUT_S = 1800.0  # torch.distributed's own default for a collective's wait
RANK_EXIT_S = 10.0  # how long rank 0 waits for another rank to exit before terminating it


def sum_over_ranks(value: float) -> float:
    """``value`` summed over every rank (every rank must call it); itself without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(total)
    return float(total.item())


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class DistributedTrainer(Trainer):
    """`Trainer` on one rank of an initialised process group; the same arguments on every rank
    (``config.batch_size`` is the global batch). Only rank 0's events need be consumed for
    records; every rank must iterate ``events()`` in step."""

    def __init__(
        self,
        model: PreTrainedLM,
        tokenizer: PreTrainedTokenizerBase,
        examples: Sequence[Example],
        config: TrainConfig,
        rho: RhoSchedule = 1.0,
        validation: Sequence[Example] | None = None,
    ) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DistributedTrainer needs torch.distributed.init_process_group")
        super().__init__(model, tokenizer, examples, config, rho=rho, validation=validation)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._ddp: DistributedDataParallel | None = None
        self._ddp_names: tuple[str, ...] = ()
        self._probing = False

    # -- selection: rank 0 decides, every rank applies ------------------------------------------
    def _select(self, epoch: int, rho: float, start: int = 0) -> tuple[list[str], float, float]:
        decided: list[Any] = [None]
        if self.rank == 0:
            self._probing = True  # the probe runs on rank 0 alone: no collective inside it
            try:
                # With the selection, rank 0's learning-rate scale of the partial update
                # (greentrainer_core.partial): every rank steps alike.
                decided[0] = (*super()._select(epoch, rho, start), self._lr_scale())
            finally:
                self._probing = False
        dist.broadcast_object_list(decided, src=0)
        names, importance_s, selection_s, scale = decided[0]
        if self.rank != 0:
            set_lr_scale(self.optimizer, self.scheduler, self.config.lr, float(scale))
        return list(names), float(importance_s), float(selection_s)

    def _lr_scale(self) -> float:
        """The scale `set_lr_scale` gave the peak learning rate (1 when it never ran)."""
        return float(self.scheduler.base_lrs[0]) / self.config.lr if self.config.lr else 1.0

    def events(self) -> Iterator[Event]:
        """`Trainer.events`, each epoch's validation loss rank 0's (every rank stops early
        after the same epoch)."""
        for event in super().events():
            if isinstance(event, EpochRecord) and self.validation:
                loss: list[Any] = [event.validation_loss]
                dist.broadcast_object_list(loss, src=0)
                event.validation_loss = loss[0]  # the history's record too: the same object
            yield event

    # -- one step: this rank's rows under DDP -----------------------------------------------------
    def _module(self) -> torch.nn.Module:
        names = tuple(self._trainable_names())
        if not names:  # nothing trainable anywhere (an empty selection): nothing to reduce
            model: torch.nn.Module = self.model
            return model
        if self._ddp is None or names != self._ddp_names:
            self._ddp = None  # the old reducer's hooks go with it
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self.model, device_ids=device_ids)
            self._ddp_names = names
        return self._ddp

    def _label_tokens(self, labels: torch.Tensor) -> int:
        # Causal LMs predict token t+1 from t: the first label of each row never counts.
        counted = labels if self.model.config.is_encoder_decoder else labels[:, 1:]
        return int((counted != IGNORE_INDEX).sum())

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self._probing:
            return super()._loss(batch)
        shards = {k: torch.tensor_split(v, self.world_size)[self.rank] for k, v in batch.items()}
        rows = shards["input_ids"].shape[0]
        tokens = self._label_tokens(shards["labels"]) if rows else 0
        counts = torch.tensor([float(tokens)], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(counts)
        total = max(float(counts.item()), 1.0)
        if rows == 0:  # fewer rows than ranks: take part in the reduction with a zero gradient
            shards = {k: v[:1] for k, v in batch.items()}
        local = {k: v.to(self.device) for k, v in shards.items()}
        module = self._module()
        if tokens:
            weighted = module(**local).loss * (tokens / total)
        else:
            logits = module(**{k: v for k, v in local.items() if k != "labels"}).logits
            weighted = logits.sum() * 0.0
        value = weighted.detach().to(torch.float64).reshape(1).to(_comm_device())
        dist.all_reduce(value)  # the global batch's mean loss
        scaled: torch.Tensor = weighted * self.world_size  # DDP averages gradients over ranks
        # The global loss as the value, this rank's weighted loss as the gradient.
        loss: torch.Tensor = scaled + (value.to(scaled.device, scaled.dtype).reshape(())
                                       - scaled).detach()
        return loss

    def _step(
        self, record: EpochRecord, i: int, batch: dict[str, torch.Tensor], last: bool
    ) -> StepEvent:
        counted_before = record.executed_flops
        event = super()._step(record, i, batch, last)
        executed = int(sum_over_ranks(float(event.executed_flops)))
        record.executed_flops = counted_before + executed
        return dataclasses.replace(event, executed_flops=executed)


# -- processes ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _join(rank: int, world_size: int, backend: str, port: int, timeout_s: float) -> None:
    """Join the group as ``rank`` (NCCL: rank r uses cuda:r). ``timeout_s``: how long a
    collective waits for the slowest rank (rank 0 writes checkpoints between epochs)."""
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout_s))


def _entry(rank: int, fn: Callable[..., None], world_size: int, backend: str, port: int,
           args: tuple[Any, ...], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _join(rank, world_size, backend, port, timeout_s)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def _beside(index: int, fn: Callable[..., None], world_size: int, backend: str, port: int,
            args: tuple[Any, ...], timeout_s: float) -> None:
    _entry(index + 1, fn, world_size, backend, port, args, timeout_s)


def launch(fn: Callable[..., None], world_size: int, *args: Any, backend: str | None = None) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` spawned processes of one process
    group on this machine (NCCL on GPUs: rank r uses cuda:r; gloo on CPUs). ``fn`` must be
    importable (spawn pickles it by name). Raises when any rank raises."""
    import torch.multiprocessing as mp

    backend = backend or _default_backend()
    mp.spawn(_entry, args=(fn, world_size, backend, _free_port(), args),  # type: ignore[no-untyped-call]
             nprocs=world_size, join=True)


@contextmanager
def rank_zero_here(fn: Callable[..., None], world_size: int, *args: Any,
                   backend: str | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """This process as rank 0 of a group of ``world_size`` on this machine, and
    ``fn(rank, world_size, *args)`` as ranks 1.. in spawned processes (as `launch`), for as long
    as the block runs. So a caller that keeps state of its own (a worker's lease, its database
    writes, its carbon decisions) trains rank 0 in its own process and reads its events there.

    On exit the group is destroyed and the other ranks are joined; when the block raised (rank 0
    stopped early: paused, cancelled, failed) they are terminated at once, as they are after
    ``RANK_EXIT_S`` when still running.
    A rank that fails while the group trains makes rank 0's next collective raise (its
    connection closes), at the latest after ``timeout_s``."""
    import torch.multiprocessing as mp

    backend = backend or _default_backend()
    port = _free_port()
    others = mp.start_processes(  # type: ignore[no-untyped-call]
        _beside, args=(fn, world_size, backend, port, args, timeout_s), nprocs=world_size - 1,
        join=False, start_method="spawn")
    finished = False
    try:
        _join(0, world_size, backend, port, timeout_s)
        try:
            yield
            finished = True
        finally:
            dist.destroy_process_group()
    finally:
        for process in others.processes:
            # After a full run the others end by themselves; else they wait for rank 0.
            process.join(timeout=RANK_EXIT_S if finished else 0)
            if process.is_alive():
                process.terminate()
                process.join()
