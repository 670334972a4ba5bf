"""Data-parallel training on 2 CPU processes (gloo): every rank applies the same per-epoch
selection, decided on rank 0, and the loss trajectory is that of one process on the same global
batch; executed FLOPs are summed over the ranks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from greentrainer_core.config import EpochRecord, EpochStart, StepEvent, TrainConfig
from greentrainer_core.data import SummaryRow, tokenize_rows
from greentrainer_core.distributed import (
    RANK_EXIT_S,
    DistributedTrainer,
    launch,
    rank_zero_here,
    sum_over_ranks,
)
from greentrainer_core.train import Trainer
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer

# Two half-batches summed in another order than one whole batch: float32 rounding, compounded
# over 10 optimizer steps at lr 1e-2.
LOSS_RTOL = 1e-4
RHOS = [0.45, 1.0]


def _setup(n: int = 10) -> tuple[Any, Any, TrainConfig]:
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    rows = [SummaryRow(i, f"{s} {i}", t) for i, (s, t) in enumerate((ROWS * 4)[:n])]
    # batch_size 4 over 10 rows: the last batch has 2 rows, one per rank.
    config = TrainConfig(epochs=2, batch_size=4, max_length=32, lr=1e-2)
    return tok, tokenize_rows(rows, tok, max_length=32), config


def _trace(events: Any) -> dict[str, Any]:
    trace: dict[str, Any] = {"selected": [], "losses": [], "executed": [], "epoch_loss": []}
    for event in events:
        if isinstance(event, EpochStart):
            trace["selected"].append(list(event.selected))
        elif isinstance(event, StepEvent):
            trace["losses"].append(event.loss)
            trace["executed"].append(event.executed_flops)
        elif isinstance(event, EpochRecord):
            trace["epoch_loss"].append(event.loss)
    return trace


def _rank(rank: int, world_size: int, out: str) -> None:
    tok, examples, config = _setup()
    trainer = DistributedTrainer(tiny_llama(0), tok, examples, config, rho=RHOS)
    trace = _trace(trainer.events())
    trace["trainable"] = trainer._trainable_names()
    trace["energy_sum"] = sum_over_ranks(float(rank + 1))
    trace["weights"] = float(sum(p.double().sum() for p in trainer.model.parameters()))
    Path(out, f"rank-{rank}.json").write_text(json.dumps(trace))


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    tok, examples, config = _setup()
    trainer = Trainer(tiny_llama(0), tok, examples, config, rho=RHOS)
    trace = _trace(trainer.events())
    trace["weights"] = float(sum(p.double().sum() for p in trainer.model.parameters()))
    return trace


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp")
    launch(_rank, 2, str(out), backend="gloo")
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]


def test_every_rank_applies_rank_zeros_selection(ranks: list[dict[str, Any]],
                                                 single: dict[str, Any]) -> None:
    assert ranks[0]["selected"] == ranks[1]["selected"] == single["selected"]
    assert len(ranks[0]["selected"][0]) < len(ranks[0]["selected"][1])  # rho 0.45, then 1.0
    assert ranks[0]["trainable"] == ranks[1]["trainable"]


def test_the_loss_trajectory_is_one_processs_on_the_same_global_batch(
        ranks: list[dict[str, Any]], single: dict[str, Any]) -> None:
    assert len(single["losses"]) == 6  # 3 global batches x 2 epochs
    for rank in ranks:
        torch.testing.assert_close(rank["losses"], single["losses"], rtol=LOSS_RTOL, atol=0)
        torch.testing.assert_close(rank["epoch_loss"], single["epoch_loss"], rtol=LOSS_RTOL,
                                   atol=0)
    # The same weights after training: the averaged gradients were the global batch's.
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["weights"] == pytest.approx(single["weights"], rel=1e-5)
    assert single["losses"][0] != single["losses"][-1]  # it trained


def test_flops_and_energy_are_summed_over_ranks(ranks: list[dict[str, Any]],
                                                single: dict[str, Any]) -> None:
    assert ranks[0]["executed"] == ranks[1]["executed"]
    # Each rank ran half the rows: their sum is the whole batch's count.
    torch.testing.assert_close([float(x) for x in ranks[0]["executed"]],
                               [float(x) for x in single["executed"]], rtol=0.02, atol=0)
    assert ranks[0]["energy_sum"] == ranks[1]["energy_sum"] == 3.0


# -- validation and early stopping --------------------------------------------------------------
def _validated_setup() -> tuple[Any, Any, Any, TrainConfig]:
    tok, examples, config = _setup()
    validation = examples[:3]
    # epochs 4, patience 1: the runs stop at the first epoch that does not improve, if any.
    return tok, examples, validation, TrainConfig(epochs=4, batch_size=4, max_length=32, lr=5e-2,
                                                  early_stopping_patience=1)


def _validated_trace(trainer: Trainer) -> dict[str, Any]:
    trace = _trace(trainer.events())
    trace["validation"] = [r.validation_loss for r in trainer.history]
    trace["stopped_early"] = trainer.stopped_early()
    trace["base_lrs"] = list(trainer.scheduler.base_lrs)
    return trace


def _validated_rank(rank: int, world_size: int, out: str) -> None:
    tok, examples, validation, config = _validated_setup()
    trainer = DistributedTrainer(tiny_llama(0), tok, examples, config, rho=0.45,
                                 validation=validation)
    Path(out, f"rank-{rank}.json").write_text(json.dumps(_validated_trace(trainer)))


def test_validation_loss_and_early_stopping_match_one_process(
        tmp_path: Path) -> None:
    tok, examples, validation, config = _validated_setup()
    single = _validated_trace(Trainer(tiny_llama(0), tok, examples, config, rho=0.45,
                                      validation=validation))
    launch(_validated_rank, 2, str(tmp_path), backend="gloo")
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["validation"] == ranks[1]["validation"]  # rank 0's, broadcast
    assert len(single["validation"]) >= 1 and None not in single["validation"]
    torch.testing.assert_close(ranks[0]["validation"], single["validation"], rtol=LOSS_RTOL,
                               atol=0)
    assert ranks[0]["stopped_early"] == ranks[1]["stopped_early"] == single["stopped_early"]
    assert len(ranks[1]["epoch_loss"]) == len(single["epoch_loss"])
    # The partial update's learning-rate scale, set on rank 0, is every rank's.
    assert ranks[0]["base_lrs"] == ranks[1]["base_lrs"]
    torch.testing.assert_close(ranks[1]["base_lrs"], single["base_lrs"], rtol=1e-6, atol=0)


# -- rank 0 in the caller's process ---------------------------------------------------------------
def _waits_for_rank_zero(rank: int, world_size: int, out: str) -> None:
    Path(out, f"rank-{rank}.started").write_text("")
    decided: list[Any] = [None]
    torch.distributed.broadcast_object_list(decided, src=0)  # rank 0 never sends: it stopped
    Path(out, f"rank-{rank}.json").write_text(json.dumps(decided))


class _Stopped(Exception):
    pass


def test_rank_zero_here_trains_with_the_others_and_ends_them_when_it_stops(
        tmp_path: Path) -> None:
    with rank_zero_here(_rank, 2, str(tmp_path), backend="gloo"):
        _rank(0, 2, str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["selected"] == ranks[1]["selected"] and ranks[0]["losses"] == ranks[1]["losses"]
    assert not torch.distributed.is_initialized()  # the caller's process can run the next job

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    raised_at = 0.0
    with pytest.raises(_Stopped), rank_zero_here(_waits_for_rank_zero, 2, str(stopped),
                                                 backend="gloo"):
        while not (stopped / "rank-1.started").exists():
            time.sleep(0.05)
        raised_at = time.monotonic()
        raise _Stopped  # a cancel: rank 1 waits in a collective rank 0 never makes
    assert time.monotonic() - raised_at < RANK_EXIT_S  # terminated at once, not waited for
    assert not (stopped / "rank-1.json").exists()  # and it did not finish
    assert not torch.distributed.is_initialized()
