"""Step time of full fine-tuning under Hugging Face `Trainer` against GreenTrainer's, one run.

Issue 21 asks for the saving against what users run today: `transformers.Trainer` doing plain full
fine-tuning. This fine-tunes the same model (the shipped SmolLM2-135M-Instruct by default), on the
same tokenized rows (the product's sample data), in the same batches, at the same learning rate
and seed, four ways side by side:

- ``hf``: `transformers.Trainer` (AdamW with its default implementation, fp32, CPU, no eval, no
  saving, no reports), each step timed by a `TrainerCallback` (``on_step_begin`` to
  ``on_step_end``: forward, backward, clipping, optimizer and scheduler step, zero_grad);
- ``full``: `greentrainer_core.train.Trainer` with method ``full`` (rho 1.0);
- ``gt0.7`` and ``gt0.5``: GreenTrainer at the product's default rho and at the floor, timed by
  the trainer's own `StepEvent.wall_s` (forward, backward, optimizer step; the FLOPs counter on,
  as the product runs it; the importance probe and selection run before the first step, untimed).

Every trainer holds its own copy of the model; the four step in turn, one step each per round (the
starting one rotates), so a burst of load on the shared machine hits all of them alike. The
Hugging Face Trainer runs its own loop in a thread that the callback holds between steps. The
first ``--warmup`` steps of each are not counted; the report gives the median and interquartile
range of the rest, each method's median over Hugging Face's, the training loss at step 1 of each
(the same weights and the same first batch: they should agree), and the process's peak RSS.

    OMP_NUM_THREADS=1 nice -n 5 python3 benchmarks/hf_trainer_step.py \\
        --out benchmarks/results/hf_trainer_step

``--quick`` (1 warm-up + 2 steps) is the test suite's smoke run: pass ``--model`` a tiny local
model, as tests/benchmarks/test_hf_trainer_step.py does.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from greentrainer_carbon.rho_policy import DEFAULT_RHO, RHO_FLOOR  # noqa: E402
from greentrainer_core.config import EpochStart, Event, StepEvent, TrainConfig  # noqa: E402
from greentrainer_core.data import Example, collate, epoch_order, load_examples  # noqa: E402
from greentrainer_core.hf_types import PreTrainedLM  # noqa: E402
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm  # noqa: E402
from greentrainer_core.train import Trainer  # noqa: E402

SAMPLE_DATA = ROOT / "greentrainer_core" / "sample_data" / "xsum_demo_train.jsonl"
HF = "hf"
LOSS_TOLERANCE = 1e-3  # relative: fp32, same weights and batch; only the reduction order differs


@dataclass
class MethodResult:
    """The measured steps of one method (seconds and loss per step, warm-up steps included)."""

    name: str
    description: str
    step_s: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    tensors: int | None = None  # tensors trained (GreenTrainer's selection)


class Runner(Protocol):
    result: MethodResult

    def step(self) -> None: ...

    def close(self) -> None: ...


class GreenTrainerRunner:
    """Steps a `greentrainer_core.train.Trainer` one micro-batch at a time through its events."""

    def __init__(self, result: MethodResult, trainer: Trainer) -> None:
        self.result, self._events = result, trainer.events()

    def step(self) -> None:
        event: Event
        for event in self._events:
            if isinstance(event, EpochStart):
                self.result.tensors = len(event.selected)
            elif isinstance(event, StepEvent):
                self.result.step_s.append(event.wall_s)
                self.result.loss.append(event.loss)
                return
        raise RuntimeError(f"{self.result.name}: the trainer ended after {len(self.result.step_s)} steps")

    def close(self) -> None:
        """Nothing to release: the trainer's event generator goes with the runner."""


def _hf_callback_class() -> type:
    from transformers import TrainerCallback

    class StepTurns(TrainerCallback):
        """Holds Hugging Face's training loop before each step until ``go`` is released, times the
        step, releases ``done`` after it, and keeps the logged training loss of every step."""

        def __init__(self, result: MethodResult) -> None:
            self.result, self.go, self.done = result, threading.Semaphore(0), threading.Semaphore(0)
            self._began = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.go.acquire()
            self._began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.result.step_s.append(time.perf_counter() - self._began)
            self.done.release()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.result.loss.append(float(logs["loss"]))

    return StepTurns


class HFTrainerRunner:
    """`transformers.Trainer.train()` in a thread, let through one step per ``step()`` call."""

    def __init__(self, result: MethodResult, model: PreTrainedLM, rows: Sequence[Example],
                 config: TrainConfig, pad_id: int, max_steps: int, threads: int) -> None:
        from transformers import Trainer as HFTrainer
        from transformers import TrainingArguments
        from transformers.trainer_callback import PrinterCallback

        self.result, self._threads, self._max_steps = result, threads, max_steps
        self.error: BaseException | None = None
        self._turns = _hf_callback_class()(result)
        self._output_dir = tempfile.TemporaryDirectory(prefix="hf-trainer-step-")
        args = TrainingArguments(
            output_dir=self._output_dir.name,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.lr,
            weight_decay=config.weight_decay,
            lr_scheduler_type="linear",
            max_steps=max_steps,
            seed=config.seed,
            use_cpu=True,
            bf16=False,
            fp16=False,
            dataloader_num_workers=0,
            # the rows are already in GreenTrainer's epoch order, so both see the same batches
            train_sampling_strategy="sequential",
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=1,  # the loss of every step, to the callback (after the timed step)
            report_to=[],
            disable_tqdm=True,
            remove_unused_columns=False,
        )
        self.optim = getattr(args.optim, "value", str(args.optim))
        self.max_grad_norm = args.max_grad_norm
        examples = list(rows)

        def collate_rows(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
            return collate([Example(r["input_ids"], r["labels"]) for r in batch], pad_id,
                           multiple_of=config.pad_to_multiple_of, max_width=config.max_length)

        self.trainer = HFTrainer(
            model=model,
            args=args,
            train_dataset=[asdict(e) for e in examples],
            data_collator=collate_rows,
            callbacks=[self._turns],
        )
        self.trainer.remove_callback(PrinterCallback)  # the losses go to the callback, not stdout
        self._thread = threading.Thread(target=self._train, name="hf-trainer", daemon=True)
        self._thread.start()

    def _train(self) -> None:
        try:
            torch.set_num_threads(self._threads)  # the setting is per thread under OpenMP
            self.trainer.train()
        except BaseException as exc:  # handed to the main thread, which raises it
            self.error = exc
        finally:
            self._turns.done.release()

    def step(self) -> None:
        steps = len(self.result.step_s)
        self._turns.go.release()
        self._turns.done.acquire()
        if self.error is not None:
            raise RuntimeError(f"Hugging Face Trainer failed at step {steps + 1}") from self.error
        if len(self.result.step_s) != steps + 1:
            raise RuntimeError(f"Hugging Face Trainer ended after {steps} steps")

    def close(self) -> None:
        """Wait for the loop to finish after its last step. A run cut short leaves the thread
        waiting for a turn that never comes: it is a daemon and ends with the process."""
        if len(self.result.step_s) == self._max_steps:
            self._thread.join(timeout=120)
        self._output_dir.cleanup()
        if self.error is not None:
            raise RuntimeError("Hugging Face Trainer failed after its last step") from self.error


def without_gguf_marker(model: PreTrainedLM) -> PreTrainedLM:
    """A model loaded from a GGUF file holds float weights dequantized at load, but transformers
    still marks it quantized, and `transformers.Trainer` refuses to fine-tune a quantized model
    ("attach trainable adapters"). Drop the marker with the quantizer's own
    `remove_quantization_config`, as a user of that Trainer on the shipped model would have to;
    other models pass unchanged."""
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is not None and getattr(method, "value", method) == "gguf":
        quantizer.remove_quantization_config(model)
    return model


def rows_for_steps(examples: Sequence[Example], batch_size: int, steps: int) -> list[Example]:
    """The data repeated to fill ``steps`` batches, so one GreenTrainer epoch covers every step (one
    selection, no importance probe between measured steps)."""
    needed = steps * batch_size
    return (list(examples) * -(-needed // len(examples)))[:needed]


def in_core_order(rows: Sequence[Example], seed: int) -> list[Example]:
    """``rows`` in the order GreenTrainer's first epoch reads them (`epoch_order`): the Hugging
    Face Trainer, reading them in sequence, then gets the same batches."""
    return [rows[i] for i in epoch_order(len(rows), 0, seed)]


def summarize(result: MethodResult, warmup: int) -> dict[str, Any]:
    """Median and interquartile range (s) of the steps after the warm-up."""
    timed = result.step_s[warmup:]
    q1, _, q3 = statistics.quantiles(timed, n=4, method="inclusive") if len(timed) > 1 else timed * 3
    return {"median_s": statistics.median(timed), "iqr_s": q3 - q1, "q1_s": q1, "q3_s": q3,
            "timed_steps": len(timed)}


def paired_ratio(result: MethodResult, reference: MethodResult, warmup: int) -> float:
    """The median, over the measured rounds, of this method's step time over the reference's in
    the same round."""
    pairs = zip(result.step_s[warmup:], reference.step_s[warmup:], strict=True)
    return statistics.median(mine / theirs for mine, theirs in pairs)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def report(results: list[MethodResult], meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The markdown report and the JSON record of a finished run."""
    warmup = meta["warmup"]
    stats = {r.name: summarize(r, warmup) for r in results}
    hf_median = stats[HF]["median_s"]
    hf_loss, full_loss = results[0].loss[0], results[1].loss[0]
    loss_gap = abs(hf_loss - full_loss) / max(abs(hf_loss), 1e-12)
    rows = [{**asdict(r), **stats[r.name], "vs_hf": stats[r.name]["median_s"] / hf_median,
             "vs_hf_paired": paired_ratio(r, results[0], warmup), "loss_step1": r.loss[0]}
            for r in results]
    record = {**meta, "methods": rows,
              "loss_check": {"hf": hf_loss, "greentrainer_full": full_loss,
                             "relative_difference": loss_gap, "tolerance": LOSS_TOLERANCE,
                             "agree": loss_gap <= LOSS_TOLERANCE}}
    lines = [
        f"# Step time: Hugging Face Trainer against GreenTrainer ({meta['model']}, "
        f"{meta['parameters_m']:.3g}M parameters, CPU, {meta['threads']} thread(s))",
        "",
        f"Batch {meta['batch_size']} of `{meta['data']}` ({meta['rows']} rows, repeated to fill the steps; "
        f"padded to a multiple of {meta['pad_to_multiple_of']}, at most {meta['max_length']} tokens: "
        f"{meta['shapes']}), lr {meta['lr']}, seed {meta['seed']}, fp32. {meta['warmup']} warm-up + "
        f"{meta['steps']} measured steps per method, the four stepping in turn (one step each per round).",
        "",
        "| method | tensors trained | median step s | IQR s | vs HF Trainer (medians) "
        "| vs HF Trainer (per round) | loss at step 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['description']} | {row['tensors'] if row['tensors'] is not None else 'all'} | "
            f"{row['median_s']:.3f} | {row['iqr_s']:.3f} | {row['vs_hf']:.3f} | "
            f"{row['vs_hf_paired']:.3f} | {row['loss_step1']:.5f} |"
        )
    lines += [
        "",
        "vs HF Trainer (medians): the method's median step over HF's; (per round): the median over "
        "the measured rounds of the method's step over HF's step in the same round, which ran "
        "within a minute of it: a busy spell on the shared machine slows both.",
    ]
    lines += [
        "",
        f"Loss at step 1 (same weights, same batch): HF Trainer {hf_loss:.6f}, GreenTrainer full "
        f"{full_loss:.6f}, relative difference {loss_gap:.2e} "
        f"({'agree' if loss_gap <= LOSS_TOLERANCE else 'DIFFER'} within {LOSS_TOLERANCE:g}).",
        "",
        "What each time covers. HF Trainer: `on_step_begin` to `on_step_end` (forward, backward, "
        f"gradient clipping at {meta['hf_max_grad_norm']}, `{meta['hf_optim']}` step, scheduler, zero_grad). "
        "GreenTrainer: its `StepEvent.wall_s` (forward and backward"
        + (" under the FLOPs counter, as the product runs" if meta["count_flops"] else
           ", FLOPs counter off (`--count-flops no`)")
        + ", `torch.optim.AdamW` step, scheduler, zero_grad); its FLOPs profile of each batch shape "
        "(once per job) and its importance probe and selection (before the first step) are not "
        "in the step time.",
        "",
        f"Machine: {meta['machine']}; load average (1/5/15 min) {meta['load_start']} at the start, "
        f"{meta['load_end']} at the end; peak RSS of the process (all four trainers live at once) "
        f"{meta['peak_rss_mib']:.0f} MiB; torch {meta['torch']}, transformers {meta['transformers']}; "
        f"run took {meta['wall_s']:.0f} s.",
        "",
        "All step times (s), warm-up first:",
        "",
    ]
    lines += [f"- {r.name}: " + ", ".join(f"{t:.3f}" for t in r.step_s) for r in results]
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines), record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--model", default=SHIPPED_MODEL, help="model to load offline (default: shipped)")
    p.add_argument("--data", default=str(SAMPLE_DATA), help="JSONL/CSV/Parquet of source/target rows")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--max-length", type=int, default=defaults.max_length)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--rhos", default=f"{DEFAULT_RHO},{RHO_FLOOR}", help="GreenTrainer rhos below 1")
    p.add_argument("--warmup", type=int, default=3, help="steps per method not counted")
    p.add_argument("--steps", type=int, default=8, help="measured steps per method")
    p.add_argument("--count-flops", choices=("yes", "no"), default="yes",
                   help="GreenTrainer counts each step's FLOPs (yes: as the product runs)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="1 warm-up + 2 steps (pass a tiny --model)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    p.add_argument("--report", action="store_true", help="rewrite OUT.md (and OUT.json) from OUT.json")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.steps = 1, 2
    problems = [f"--{n.replace('_', '-')} must be >= 1" for n in ("batch_size", "max_length", "steps",
                                                                  "threads") if getattr(args, n) < 1]
    problems += ["--warmup must be >= 0"] if args.warmup < 0 else []
    try:
        args.rho_list = [float(r) for r in args.rhos.split(",") if r.strip()]
    except ValueError:
        problems.append(f"--rhos {args.rhos!r} is not a comma-separated list of numbers")
        args.rho_list = []
    problems += [f"--rhos: {r} is not in (0, 1)" for r in args.rho_list if not 0 < r < 1]
    if args.report and not (args.out and Path(args.out).with_suffix(".json").is_file()):
        problems.append("--report needs --out OUT with an OUT.json from an earlier run")
    if not Path(args.data).is_file():
        problems.append(f"--data {args.data!r} does not exist")
    if problems:
        p.error("; ".join(problems))
    return args


def batch_widths(rows: Sequence[Example], config: TrainConfig, pad_id: int) -> dict[int, int]:
    """The padded length of every batch of ``rows`` read in sequence: {length: batches}."""
    widths: dict[int, int] = {}
    for b in range(0, len(rows), config.batch_size):
        batch = collate(rows[b : b + config.batch_size], pad_id, multiple_of=config.pad_to_multiple_of,
                        max_width=config.max_length)
        widths[batch["input_ids"].shape[1]] = widths.get(batch["input_ids"].shape[1], 0) + 1
    return widths


def command_line(argv: Sequence[str]) -> str:
    """The command as run, with the thread variable and the niceness that shaped the timings."""
    prefix = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    prefix += [f"nice -n {os.nice(0)}"] if os.nice(0) else []
    return " ".join([*prefix, "python3 benchmarks/hf_trainer_step.py", *map(shlex.quote, argv)])


def rounds(runners: Sequence[Runner], steps: int) -> Iterator[Runner]:
    """Each runner once per round, the starting one moving on by one each round."""
    for r in range(steps):
        for k in range(len(runners)):
            yield runners[(r + k) % len(runners)]


def write(out: str | Path, results: list[MethodResult], meta: dict[str, Any]) -> None:
    """Print the report and write OUT.md and OUT.json."""
    text, record = report(results, meta)
    print(text)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".md").write_text(text)
    path.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")


def rewrite(out: str | Path) -> None:
    """Report again from OUT.json (what `report` derives is computed afresh)."""
    record = json.loads(Path(out).with_suffix(".json").read_text())
    kept = {f.name for f in fields(MethodResult)}
    results = [MethodResult(**{k: v for k, v in m.items() if k in kept}) for m in record.pop("methods")]
    record.pop("loss_check")
    write(out, results, record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        rewrite(args.out)
        return 0
    torch.set_num_threads(args.threads)
    began, load_start = time.perf_counter(), os.getloadavg()
    import transformers

    base, tokenizer = load_causal_lm(args.model, dtype="float32")
    if base.config.is_encoder_decoder:
        raise SystemExit("hf_trainer_step.py: decoder-only models only (the HF side pads like the core's decoder batches)")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    examples = load_examples(args.data, tokenizer, max_length=args.max_length)
    total = args.warmup + args.steps
    config = TrainConfig(method="full", batch_size=args.batch_size, max_length=args.max_length,
                         lr=args.lr, seed=args.seed, max_steps_per_epoch=total,
                         count_flops=args.count_flops == "yes")
    rows = rows_for_steps(examples, args.batch_size, total)
    widths = batch_widths(in_core_order(rows, args.seed), config, pad_id)
    results = [MethodResult(HF, "HF `Trainer`, full fine-tuning"),
               MethodResult("full", "GreenTrainer, full fine-tuning (rho 1.0)")]
    results += [MethodResult(f"gt{rho:g}", f"GreenTrainer rho {rho:g}"
                             + (" (product default)" if rho == DEFAULT_RHO else "")) for rho in args.rho_list]
    base.train()
    hf = HFTrainerRunner(results[0], without_gguf_marker(copy.deepcopy(base)), in_core_order(rows, args.seed), config,
                         pad_id, total, args.threads)
    runners: list[Runner] = [hf]
    try:
        for result, rho in zip(results[1:], [1.0, *args.rho_list], strict=True):
            method_config = replace(config, method="full" if rho == 1.0 else "greentrainer")
            trainer = Trainer(copy.deepcopy(base), tokenizer, rows, method_config, rho=rho)
            for width in widths:  # the FLOPs profile of a shape is paid once per job: not in a step
                trainer.profile(args.batch_size, width)
            runners.append(GreenTrainerRunner(result, trainer))
        n_params = sum(p.numel() for p in base.parameters()) / 1e6
        del base
        for i, runner in enumerate(rounds(runners, total)):
            runner.step()
            r = runner.result
            # Hugging Face logs a step's loss after on_step_end: it is shown a round later
            loss = f"loss {r.loss[len(r.step_s) - 1]:.4f}" if len(r.loss) >= len(r.step_s) else ""
            print(f"round {i // len(runners) + 1}/{total} {r.name}: {r.step_s[-1]:.3f} s {loss}",
                  flush=True)
    finally:
        for runner in runners:
            runner.close()
    meta = {
        "model": args.model, "parameters_m": n_params, "threads": torch.get_num_threads(),
        "data": os.path.relpath(args.data, ROOT) if Path(args.data).resolve().is_relative_to(ROOT)
        else args.data,
        "rows": len(examples), "batch_size": args.batch_size, "max_length": args.max_length,
        "pad_to_multiple_of": config.pad_to_multiple_of,
        "shapes": ", ".join(f"{n} batches of {w} tokens" for w, n in sorted(widths.items())),
        "lr": args.lr, "seed": args.seed, "warmup": args.warmup, "steps": args.steps,
        "count_flops": config.count_flops, "hf_optim": hf.optim, "hf_max_grad_norm": hf.max_grad_norm,
        "machine": f"shared {os.cpu_count()}-core CPU ({os.uname().machine}), other jobs running",
        "load_start": " ".join(f"{x:.2f}" for x in load_start),
        "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "peak_rss_mib": _rss_mib(), "torch": torch.__version__, "transformers": transformers.__version__,
        "wall_s": time.perf_counter() - began,
        "command": command_line(argv if argv is not None else sys.argv[1:]),
    }
    if args.out:
        write(args.out, results, meta)
    else:
        print(report(results, meta)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
