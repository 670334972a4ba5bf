"""Chart helpers: tensor names grouped by layer, round axis ticks, units chosen per axis."""

from __future__ import annotations

import math

import pytest

from service.dashboard.charts import layer_of
from service.dashboard.format import co2, flops, kwh, percent, unit_for
from service.dashboard.svg import Axis, Series, chart, nice_ticks


@pytest.mark.parametrize(("name", "layer"), [
    ("model.layers.11.self_attn.q_proj.weight", "layer 11"),
    ("transformer.h.3.attn.c_attn.weight", "layer 3"),
    ("model.decoder.layers.0.fc1.bias", "layer 0"),
    ("encoder.block.7.layer.0.SelfAttention.q.weight", "layer 7"),
    ("model.embed_tokens.weight", "embeddings"),
    ("lm_head.weight", "lm_head"),
    ("model.norm.weight", "norm"),
    ("score.weight", "other"),
])
def test_tensor_names_are_grouped_by_their_layer_index(name: str, layer: str) -> None:
    assert layer_of(name) == layer


def test_ticks_are_round_and_cover_the_range() -> None:
    ticks = nice_ticks(0.0, 237.6)
    assert ticks[0] <= 0.0 and ticks[-1] >= 237.6
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 and len(ticks) <= 6
    step = steps.pop()
    assert round(step / 10 ** math.floor(math.log10(step)), 6) in {1, 2, 2.5, 5}


def test_numbers_are_written_in_the_unit_that_suits_them() -> None:
    assert flops(3.2e15) == "3.20 PFLOPs"
    assert flops(4.5e12) == "4.50 TFLOPs"
    assert kwh(0.0252) == "25.2 Wh"
    assert kwh(12.5) == "12.5 kWh"
    assert co2(0.00389) == "3.89 g CO2"
    assert co2(1520.0) == "1.52 t CO2"
    assert percent(1, 4) == "25.0%" and percent(1, 0) == "n/a"
    assert unit_for("flops", [1e14, 2e15]) == (1e15, "PFLOPs")


def test_every_point_carries_its_stored_value() -> None:
    svg = chart("c", "t", [Series("s", [(0, 1.5), (1, 2.5)], raw=[1.5e15, 2.5e15])],
                Axis("x"), Axis("y"))
    assert 'data-raw="1500000000000000.0"' in svg and 'data-raw="2500000000000000.0"' in svg
    assert svg.count('class="pt"') == 2
