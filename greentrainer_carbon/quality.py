"""The expected quality cost of a rho range, read from measured benchmark tables (no model of it).

Each entry is one measured comparison against full fine-tuning at the same steps and learning
rate: the ROUGE-L points GreenTrainer at that rho lost (a negative loss is a gain). The note a
job shows for its rho range is the worst measured loss at or below the range's lowest rho's
nearest measured rho, with the task and source named, so a user sees the trade before
submitting. Figures are from short CPU runs (one to three seeds): indications, not guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MeasuredLoss:
    task: str
    rho: float
    rouge_l_loss: float  # full fine-tuning's ROUGE-L minus GreenTrainer's, same steps and lr
    source: str


#: Measured at lr 1e-4 on SmolLM2-135M-Instruct. The summarization and XSum rows predate the
#: importance and selector fixes of issue 21 (the issue's own table and train_accuracy.md); the
#: ASDiv, MTS-Dialog and Gemma rows are after them, with the default lr cap 2 (a test checks them
#: against the results files).
MEASURED: tuple[MeasuredLoss, ...] = (
    MeasuredLoss("summarization (issue 21)", 0.7, 0.5, "issue 21, 300 train rows, 2 epochs"),
    MeasuredLoss("summarization (issue 21)", 0.6, 1.9, "issue 21, 300 train rows, 2 epochs"),
    MeasuredLoss("summarization (issue 21)", 0.5, 7.6, "issue 21, 300 train rows, 2 epochs"),
    MeasuredLoss("XSum sample", 0.7, 0.0, "benchmarks/results/train_accuracy.md"),
    MeasuredLoss("XSum sample", 0.5, 2.5, "benchmarks/results/train_accuracy.md"),
    MeasuredLoss("ASDiv", 0.7, 0.4, "benchmarks/results/accuracy_asdiv.md, mean of 3 seeds, lr cap 2"),
    MeasuredLoss("ASDiv", 0.6, 1.4, "benchmarks/results/accuracy_asdiv.md, mean of 3 seeds, lr cap 2"),
    MeasuredLoss("ASDiv", 0.5, 10.3, "benchmarks/results/accuracy_asdiv.md, mean of 3 seeds, lr cap 2"),
    MeasuredLoss("MTS-Dialog", 0.7, 4.9,
                 "benchmarks/results/accuracy_mts_dialog.md, mean of 2 seeds, lr cap 2"),
    MeasuredLoss("MTS-Dialog", 0.6, 6.5,
                 "benchmarks/results/accuracy_mts_dialog.md, mean of 2 seeds, lr cap 2"),
    MeasuredLoss("MTS-Dialog", 0.5, 9.2,
                 "benchmarks/results/accuracy_mts_dialog.md, mean of 2 seeds, lr cap 2"),
    MeasuredLoss("ASDiv on Gemma 3 270M", 0.7, -4.1,
                 "benchmarks/results/accuracy_asdiv_gemma3.md, 1 seed, lr cap 2"),
    MeasuredLoss("ASDiv on Gemma 3 270M", 0.6, -0.7,
                 "benchmarks/results/accuracy_asdiv_gemma3.md, 1 seed, lr cap 2"),
)


def expected_loss(rho: float, measured: tuple[MeasuredLoss, ...] = MEASURED) -> MeasuredLoss | None:
    """The worst measured loss among the measured rhos nearest to ``rho`` from below (the
    measured rho <= rho, largest), or from above when none is below; None with no measurements."""
    if not measured:
        return None
    below = [m.rho for m in measured if m.rho <= rho + 1e-9]
    nearest = max(below) if below else min(m.rho for m in measured)
    return max((m for m in measured if m.rho == nearest), key=lambda m: m.rouge_l_loss)


def quality_note(rho_min: float, rho_max: float | None = None) -> str:
    """One sentence on the expected quality cost of running epochs at ``rho_min``..``rho_max``."""
    worst = expected_loss(rho_min)
    span = f"rho {rho_min:g}" if rho_max is None or rho_max == rho_min else (
        f"rho {rho_min:g}-{rho_max:g}")
    if rho_min >= 1.0:
        return f"{span}: full fine-tuning, no quality cost"
    if worst is None:
        return f"{span}: no measured quality figure"
    return (f"{span}: at the lowest rho, up to {worst.rouge_l_loss:.1f} ROUGE-L below full "
            f"fine-tuning was measured at rho {worst.rho:g} ({worst.task}; {worst.source})")


__all__ = ["MEASURED", "MeasuredLoss", "expected_loss", "quality_note"]
