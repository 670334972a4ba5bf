"""Training options, the per-epoch rho schedule, and the structured events a training run emits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

from greentrainer_core.errors import TrainingConfigError
from greentrainer_core.methods import DEFAULT_METHOD, METHOD_NAMES, METHODS

#: A rho schedule: one rho for all epochs, one per epoch, or a callable asked with the 0-based
#: epoch index at each epoch boundary (the carbon scheduler plugs in here).
RhoSchedule = float | Sequence[float] | Callable[[int], float]


@dataclass
class TrainConfig:
    """Options of one training run. Invalid values raise TrainingConfigError naming every bad field."""

    method: str = field(default=DEFAULT_METHOD,
                        metadata={"help": f"one of {', '.join(METHOD_NAMES)}"})
    epochs: int = field(default=1, metadata={"help": "passes over the training data"})
    batch_size: int = field(default=4, metadata={"help": "examples per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(
        default=1e-4, metadata={"help": "AdamW peak learning rate (linear decay to 0)"}
    )
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW decoupled weight decay (2-D tensors only)"}
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up optimizer steps"})
    max_length: int = field(
        default=512, metadata={"help": "max tokens of prompt+target (decoder) or source (seq2seq)"}
    )
    max_target_length: int = field(default=128, metadata={"help": "max target tokens"})
    max_steps_per_epoch: int | None = field(
        default=None, metadata={"help": "cap micro-batches per epoch (benchmarks)"}
    )
    pad_to_multiple_of: int = field(
        default=64, metadata={"help": "round batch lengths up (fewer profiled shapes)"}
    )
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "pad every batch to max_length (one shape)"}
    )
    importance_batches: int = field(
        default=1, metadata={"help": "batches whose gradients the probe averages"}
    )
    importance_every_steps: int | None = field(
        default=None, metadata={"help": "also refresh the selection every N optimizer steps"}
    )
    importance_metric: str = field(
        default="adam",
        metadata={"help": "'adam' (a fresh AdamW probe step) or 'optimizer' (the live state)"},
    )
    selection_hysteresis: float = field(
        default=0.0,
        metadata={"help": "at a re-selection, the selected tensors' importance x (1 + this)"},
    )
    partial_lr_cap: float = field(
        default=2.0,
        metadata={"help": "partial update lr x min(this, 1 / selected gradient share); 1 = off"},
    )
    resolution: int = field(default=10_000, metadata={"help": "FLOPs quantisation of the selector"})
    mixed_precision: str = field(
        default="auto", metadata={"help": "'auto' (bf16 autocast on CUDA), 'bf16' or 'no'"}
    )
    count_flops: bool = field(default=True, metadata={"help": "count executed FLOPs of every step"})
    seed: int = field(default=0, metadata={"help": "data order and dropout seed"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    prefix_tokens: int = field(default=16, metadata={"help": "prefix tuning virtual tokens"})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "stop after this many epochs without a lower validation loss"},
    )

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method={self.method!r} is not one of {', '.join(METHOD_NAMES)}")
        for name in (
            "epochs",
            "batch_size",
            "grad_accum",
            "max_length",
            "max_target_length",
            "pad_to_multiple_of",
            "importance_batches",
            "resolution",
            "lora_r",
            "prefix_tokens",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)!r} must be an integer >= 1")
        for name in ("max_steps_per_epoch", "importance_every_steps", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                problems.append(f"{name}={value!r} must be None or an integer >= 1")
        if not self.lr > 0:
            problems.append(f"lr={self.lr!r} must be > 0")
        if self.weight_decay < 0 or self.warmup_steps < 0:
            problems.append("weight_decay and warmup_steps must be >= 0")
        if self.importance_metric not in ("adam", "optimizer"):
            problems.append(
                f"importance_metric={self.importance_metric!r} must be 'adam' or 'optimizer'"
            )
        if not 0.0 <= self.selection_hysteresis <= 10.0:
            problems.append(f"selection_hysteresis={self.selection_hysteresis!r} must be in [0, 10]")
        if not 1.0 <= self.partial_lr_cap <= 10.0:
            problems.append(f"partial_lr_cap={self.partial_lr_cap!r} must be in [1, 10]")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            problems.append(
                f"mixed_precision={self.mixed_precision!r} must be 'auto', 'bf16' or 'no'"
            )
        if problems:
            raise TrainingConfigError("invalid training options: " + "; ".join(problems))

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def rho_for_epoch(schedule: RhoSchedule, epoch: int) -> float:
    """The rho of a 0-based epoch. Raises TrainingConfigError for a list too short, or a value
    outside (0, 1]."""
    if callable(schedule):
        rho = schedule(epoch)
    elif isinstance(schedule, int | float):
        rho = schedule
    else:
        if epoch >= len(schedule):
            raise TrainingConfigError(
                f"rho schedule has {len(schedule)} values but epoch {epoch} was reached"
            )
        rho = schedule[epoch]
    if not isinstance(rho, int | float) or not 0 < rho <= 1:
        raise TrainingConfigError(f"rho for epoch {epoch} is {rho!r}; it must be in (0, 1]")
    return float(rho)


@dataclass(frozen=True)
class EpochStart:
    """Emitted after an epoch's importance evaluation and selection, before its first step."""

    epoch: int
    rho: float
    selected: tuple[str, ...]
    predicted_step_flops: int  # at the selection's reference shape (batch_size x max_length)
    full_step_flops: int
    importance_s: float
    selection_s: float


@dataclass(frozen=True)
class StepEvent:
    """One micro-batch: forward + backward (+ optimizer step when ``optimizer_step``)."""

    epoch: int
    step: int  # micro-batch index within the epoch
    loss: float
    executed_flops: int  # counted while the step ran (0 when count_flops is off)
    predicted_flops: int | None  # the FLOPs model's prediction for this shape and selection
    full_flops: int  # full fine-tuning of the same batch shape (the counterfactual)
    wall_s: float
    optimizer_step: bool


@dataclass
class EpochRecord:
    """Accounting of one finished epoch (also the EpochEnd event). FLOPs are summed over steps."""

    epoch: int
    rho: float
    selected: list[str]
    steps: int = 0
    loss: float = 0.0  # mean micro-batch loss
    executed_flops: int = 0
    predicted_flops: int = 0
    full_flops: int = 0
    wall_s: float = 0.0  # the whole epoch, overhead included
    overhead_s: float = 0.0  # importance evaluation + selection (+ refreshes)
    validation_loss: float | None = None  # mean per-token loss on the validation examples

    @property
    def n_selected(self) -> int:
        return len(self.selected)


Event = EpochStart | StepEvent | EpochRecord
