"""The selective training loop: per epoch, importance -> select_tensors(rho) -> apply_selection -> train.

Optimizer-state policy (deliberate): one AdamW holds every tensor of the model for the whole run.
A tensor that leaves the selection gets no gradient, so AdamW skips it: its weights, moments and
step count stay frozen (no weight decay is applied to it either). When it re-enters, AdamW resumes
from those stored moments and the tensor's own step count (its bias correction continues), rather
than restarting from zero moments. The probing step of the importance evaluation never changes
this state (it is restored bit-exactly).

FLOPs accounting: every micro-batch's forward+backward runs under ``count_step_flops`` (executed
FLOPs, counted); the FLOPs model gives the predicted FLOPs and the full-fine-tuning counterfactual
for the batch's actual shape, from a profile per distinct (batch, length) shape kept in a small
cache. Batches are padded to a multiple of ``pad_to_multiple_of`` so there are few shapes; the
selection itself uses the profile of the reference shape (batch_size x max_length).
"""

from __future__ import annotations

import copy
import errno
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from greentrainer_core import ModelProfile, apply_selection, profile_model, select_tensors
from greentrainer_core.config import (
    EpochRecord,
    EpochStart,
    Event,
    RhoSchedule,
    StepEvent,
    TrainConfig,
    rho_for_epoch,
)
from greentrainer_core.data import Example, iter_batches
from greentrainer_core.errors import TrainingConfigError, disk_full_cause
from greentrainer_core.flops import count_step_flops
from greentrainer_core.hf_types import PreTrainedLM
from greentrainer_core.importance import tensor_importance
from greentrainer_core.methods import METHODS, top2_names, wrap_peft
from greentrainer_core.partial import gradient_mass_share, lr_scale, set_lr_scale, sticky_importance

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_PROFILE_CACHE_SIZE = 16


class Trainer:
    """One fine-tuning run. Iterate ``events()`` (or call ``run(callback)``) to train.

    ``state_dict()`` / ``save_checkpoint(path)`` at an epoch end capture model, optimizer,
    scheduler, data position, RNG states and the accounting; a new Trainer built with the same
    arguments and ``load_checkpoint(path)`` continues with the next epoch.
    """

    def __init__(
        self,
        model: PreTrainedLM,
        tokenizer: PreTrainedTokenizerBase,
        examples: Sequence[Example],
        config: TrainConfig,
        rho: RhoSchedule = 1.0,
    ) -> None:
        if not examples:
            raise TrainingConfigError("no training examples")
        self.config, self.rho_schedule, self.examples, self.tokenizer = (
            config,
            rho,
            list(examples),
            tokenizer,
        )
        if not callable(rho):  # a constant or a list is checked before any work starts
            for epoch in range(config.epochs):
                rho_for_epoch(rho, epoch)
        self.device = next(model.parameters()).device
        self._profiler_model = model
        if METHODS[config.method].peft:
            # peft edits the model in place, so the full-FT counterfactual is profiled on an
            # uninitialised twin of the base model, on the same device (so the same kernels are
            # costed). NB: it costs one model's worth of memory for the peft baselines.
            with torch.device("meta"):
                twin = type(model)(copy.deepcopy(model.config))
            self._profiler_model = twin.to_empty(device=self.device)
            model = wrap_peft(
                model,
                config.method,
                lora_r=config.lora_r,
                lora_alpha=config.lora_alpha,
                prefix_tokens=config.prefix_tokens,
            )
        self.model = model
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        params = [
            (n, p)
            for n, p in model.named_parameters()
            if not METHODS[config.method].peft or p.requires_grad
        ]
        self.optimizer = torch.optim.AdamW(
            [
                {
                    "params": [p for _, p in params if p.ndim >= 2],
                    "weight_decay": config.weight_decay,
                },
                {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0},
            ],
            lr=config.lr,
        )
        total = max(1, config.epochs * -(-self.micro_batches_per_epoch() // config.grad_accum))
        warmup = config.warmup_steps

        def linear(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear)
        self.epoch, self.global_step = 0, 0
        self.history: list[EpochRecord] = []
        self.ever_trained: set[str] = set()
        self._profiles: dict[tuple[int, int, int | None], ModelProfile] = {}
        self._selected: list[str] = []

    # -- helpers -----------------------------------------------------------------------------
    def micro_batches_per_epoch(self) -> int:
        n = -(-len(self.examples) // self.config.batch_size)
        return min(n, self.config.max_steps_per_epoch or n)

    def _autocast(self) -> AbstractContextManager[object]:
        mode = self.config.mixed_precision
        if self.device.type == "cuda" and mode in ("auto", "bf16"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if mode == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        loss: torch.Tensor = self.model(**batch).loss
        return loss

    def profile(self, batch_size: int, seq_len: int, target_len: int | None = None) -> ModelProfile:
        """The FLOPs profile of one batch shape, cached. Seq2seq: ``target_len`` is the labels'
        length (default max_target_length); decoder-only models ignore it."""
        encoder_decoder = bool(self.model.config.is_encoder_decoder)
        target_len = (target_len or self.config.max_target_length) if encoder_decoder else None
        key = (batch_size, seq_len, target_len)
        if key not in self._profiles:
            if len(self._profiles) >= _PROFILE_CACHE_SIZE:
                self._profiles.pop(next(iter(self._profiles)))
            input_ids = torch.zeros((batch_size, seq_len), dtype=torch.long, device=self.device)
            labels = (
                input_ids
                if target_len is None
                else torch.zeros((batch_size, target_len), dtype=torch.long, device=self.device)
            )
            inputs = {
                "input_ids": input_ids,
                "attention_mask": torch.ones_like(input_ids),
                "labels": labels,
            }
            params = list(self._profiler_model.parameters())
            flags = [p.requires_grad for p in params]
            for p in params:  # the profile covers the tensors trainable while tracing: all of them
                p.requires_grad_(True)
            try:
                self._profiles[key] = profile_model(self._profiler_model, inputs=inputs)
            finally:
                for p, flag in zip(params, flags, strict=True):
                    p.requires_grad_(flag)
        return self._profiles[key]

    def _batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        c = self.config
        batches = iter_batches(
            self.examples,
            c.batch_size,
            epoch,
            c.seed,
            self.pad_id,
            pad_to=c.max_length if c.pad_to_max_length else None,
            multiple_of=c.pad_to_multiple_of,
            max_width=c.max_length,
            max_label_width=c.max_target_length,
        )
        for i, batch in enumerate(batches):
            if i >= self.micro_batches_per_epoch():
                return
            yield batch

    def _trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    def _probe_batches(self, epoch: int, start: int) -> list[dict[str, torch.Tensor]]:
        """``importance_batches`` batches of this epoch's order from micro-batch ``start`` on
        (wrapping round), so a refresh inside the epoch rates the data still to come."""
        n = self.micro_batches_per_epoch()
        wanted = {(start + j) % n for j in range(min(self.config.importance_batches, n))}
        return [b for i, b in enumerate(self._batches(epoch)) if i in wanted]

    def _select(self, epoch: int, rho: float, start: int = 0) -> tuple[list[str], float, float]:
        """The tensors to train now, and the seconds spent on importance and on selection.
        GreenTrainer also sets the learning-rate scale of the partial update
        (``greentrainer_core.partial``)."""
        method = self.config.method
        if METHODS[method].peft:
            return self._trainable_names(), 0.0, 0.0
        if method == "full":
            return [n for n, _ in self.model.named_parameters()], 0.0, 0.0
        if method == "top2":
            return top2_names(self.model), 0.0, 0.0
        c, t0 = self.config, time.perf_counter()
        reference = self.profile(c.batch_size, c.max_length)
        importance = tensor_importance(
            self.model,
            self.optimizer,
            self._probe_batches(epoch, start),
            self._loss,
            names=None if c.partial_lr_cap > 1 else reference.reachable(rho),
            autocast=self._autocast,
            metric=c.importance_metric,
        )
        current = self._selected or (self.history[-1].selected if self.history else [])
        if c.selection_hysteresis and current:
            importance = sticky_importance(importance, current, c.selection_hysteresis)
        t1 = time.perf_counter()
        selection = select_tensors(reference, importance, rho=rho, resolution=c.resolution)
        if c.partial_lr_cap > 1:
            share = gradient_mass_share(importance, selection.names)
            set_lr_scale(self.optimizer, self.scheduler, c.lr, lr_scale(share, c.partial_lr_cap))
        return list(selection.names), t1 - t0, time.perf_counter() - t1

    def _predicted(self, prof: ModelProfile) -> int | None:
        return None if METHODS[self.config.method].peft else int(prof.predict(self._selected))

    # -- the loop ------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Train the remaining epochs, yielding EpochStart, StepEvent and EpochRecord (epoch end)."""
        c = self.config
        self.model.train()
        while self.epoch < c.epochs:
            epoch, epoch_t0 = self.epoch, time.perf_counter()
            rho = rho_for_epoch(self.rho_schedule, epoch) if METHODS[c.method].takes_rho else 1.0
            self._selected, importance_s, selection_s = self._select(epoch, rho)
            if not METHODS[c.method].peft:
                apply_selection(self.model, self._selected)
            self.ever_trained.update(self._selected)
            reference = self.profile(c.batch_size, c.max_length)
            yield EpochStart(
                epoch,
                rho,
                tuple(self._selected),
                self._predicted(reference) or 0,
                int(reference.full_flops),
                importance_s,
                selection_s,
            )
            record = EpochRecord(
                epoch, rho, list(self._selected), overhead_s=importance_s + selection_s
            )
            n = self.micro_batches_per_epoch()
            for i, batch in enumerate(self._batches(epoch)):
                yield self._step(record, i, batch, last=(i == n - 1))
                refresh = c.importance_every_steps
                if (
                    METHODS[c.method].takes_rho
                    and refresh
                    and (i + 1) % c.grad_accum == 0
                    and self.global_step % refresh == 0
                    and i < n - 1
                ):
                    self._selected, imp_s, sel_s = self._select(epoch, rho, start=i + 1)
                    apply_selection(self.model, self._selected)
                    self.ever_trained.update(self._selected)
                    record.selected, record.overhead_s = (
                        list(self._selected),
                        record.overhead_s + imp_s + sel_s,
                    )
            record.loss /= max(record.steps, 1)
            record.wall_s = time.perf_counter() - epoch_t0
            self.history.append(record)
            self.epoch += 1
            yield record

    def _step(
        self, record: EpochRecord, i: int, batch: dict[str, torch.Tensor], last: bool
    ) -> StepEvent:
        c, t0 = self.config, time.perf_counter()

        def forward_backward() -> torch.Tensor:
            with self._autocast():
                loss = self._loss(batch)
            if loss.requires_grad:  # an empty selection (no positive importance) trains nothing
                (loss / c.grad_accum).backward()
            return loss.detach()

        if c.count_flops:
            loss, executed = count_step_flops(forward_backward)
        else:
            loss, executed = forward_backward(), 0
        stepped = (i + 1) % c.grad_accum == 0 or last
        if stepped:
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.global_step += 1
        batch_size, length = batch["input_ids"].shape
        prof = self.profile(batch_size, length, batch["labels"].shape[1])
        predicted, full = self._predicted(prof), int(prof.full_flops)
        if self.device.type == "cuda":  # CUDA kernels run asynchronously: wait before timing
            torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - t0
        record.steps += 1
        record.loss += float(loss)
        record.executed_flops += int(executed)
        record.predicted_flops += predicted or 0
        record.full_flops += full
        return StepEvent(
            record.epoch, i, float(loss), int(executed), predicted, full, wall, stepped
        )

    def run(self, callback: Callable[[Event], None] | None = None) -> list[EpochRecord]:
        """Train to the end, passing every event to ``callback``; returns the per-epoch records."""
        for event in self.events():
            if callback is not None:
                callback(event)
        return self.history

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after the last finished epoch (call at an epoch end)."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "next_batch": 0,
            "history": [vars(r).copy() for r in self.history],
            "ever_trained": sorted(self.ever_trained),
            "rng": {
                "torch": torch.get_rng_state(),
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.ever_trained = set(state["ever_trained"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def save_checkpoint(self, path: str | Path) -> None:
        """Write ``state_dict()`` atomically: a temporary file, flushed to disk, renamed into place.
        A failed write leaves neither a partial checkpoint nor the temporary file.

        Raises OSError (errno ENOSPC, ``filename`` the checkpoint's path) when the disk is full."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as handle:
                torch.save(self.state_dict(), handle)
                handle.flush()
                os.fsync(handle.fileno())  # NB: a rename of unsynced data can survive a crash as an empty file
            tmp.replace(path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if disk_full_cause(exc) is not None:  # torch reports a failed write as a RuntimeError with no errno
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise

    def load_checkpoint(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
