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
