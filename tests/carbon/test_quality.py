"""The expected quality note of a rho range reads the measured table."""

from greentrainer_carbon.quality import MEASURED, MeasuredLoss, expected_loss, quality_note

TABLE = (MeasuredLoss("t", 0.5, 7.6, "s"), MeasuredLoss("u", 0.5, 2.5, "s2"),
         MeasuredLoss("t", 0.7, 0.5, "s"))


def test_the_worst_loss_at_the_nearest_measured_rho_below():
    assert expected_loss(0.6, TABLE) == TABLE[0]
    assert expected_loss(0.75, TABLE) == TABLE[2]
    assert expected_loss(0.4, TABLE) == TABLE[0]  # nothing below: the lowest measured
    assert expected_loss(0.6, ()) is None


def test_the_note_names_the_range_the_loss_and_its_source():
    note = quality_note(0.5, 0.8)
    worst = expected_loss(0.5)
    assert worst is not None and worst in MEASURED
    assert note.startswith("rho 0.5-0.8: ") and f"{worst.rouge_l_loss:.1f} ROUGE-L" in note
    assert worst.source in note
    assert quality_note(1.0) == "rho 1: full fine-tuning, no quality cost"


def test_the_benchmark_figures_quoted_are_those_its_results_files_hold():
    """Every loss quoted from an accuracy results file is that file's mean seed-by-seed gap of
    GreenTrainer at the rho (lr 1e-4, default options) to full fine-tuning: the note a user
    reads cannot drift from the benchmark."""
    import json
    import re
    from pathlib import Path

    from benchmarks.accuracy import Target, target_gaps

    root = Path(__file__).resolve().parents[2]
    quoted = [m for m in MEASURED if m.source.startswith("benchmarks/results/accuracy_")]
    assert quoted
    for m in quoted:
        path = root / re.sub(r"\.md\b.*", ".json", m.source)
        rows = json.loads(path.read_text())
        [gap] = target_gaps(rows, (Target("q", f"gt{m.rho:g}:1e-4", "full:1e-4", 1.0),))
        seeds = re.search(r"mean of (\d+) seeds|(\d+) seed", m.source)
        assert seeds and len(gap["seeds"]) == int(seeds.group(1) or seeds.group(2)), m
        assert abs(-gap["gap"] - m.rouge_l_loss) < 0.05, (m, gap["gap"])
