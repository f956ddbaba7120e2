"""Diversity figures: hand-computed distances, and each figure tells a collapsed sampler from the world's."""

import numpy as np
import pytest

from gotr1_core.layout import Layout, ObjectBox
from gotr1_core.reasoning import Box
from gotr1_core.shapeworld.diversity import (
    coverage,
    diversity_report,
    layout_distance,
    layout_signature,
    mean_pairwise_distance,
    world_layouts,
)
from gotr1_core.shapeworld.scenes import evaluation_scenes


def _layout(*boxes, label="red circle"):
    return Layout(tuple(ObjectBox(label, Box(*b)) for b in boxes))


def test_layout_distance_on_hand_computed_boxes():
    a = _layout((0, 0, 400, 400))
    assert layout_distance(a, a) == 0.0
    half = _layout((200, 0, 600, 400))        # overlaps a by 200x400 of a 600x400 union: IoU 1/3
    assert layout_distance(a, half) == pytest.approx(1 - 1 / 3)
    assert layout_distance(a, _layout((0, 0, 400, 400), label="blue square")) == 1.0  # other object
    two = _layout((0, 0, 400, 400), (500, 500, 900, 900))
    assert layout_distance(a, two) == pytest.approx(0.5) == layout_distance(two, a)  # one of two matched
    swapped = _layout((500, 500, 900, 900), (0, 0, 400, 400))
    assert layout_distance(two, swapped) == 0.0  # same objects, same places: order is not a difference
    assert mean_pairwise_distance([a, a, half]) == pytest.approx((0 + 2 * (2 / 3)) / 3)


def test_a_one_unit_jitter_is_not_a_new_layout():
    a = _layout((125, 125, 375, 375))
    assert layout_signature(a) == layout_signature(_layout((126, 124, 375, 376)))
    assert layout_signature(a) != layout_signature(_layout((300, 125, 550, 375)))


def test_every_figure_tells_a_collapsed_sampler_from_the_worlds():
    specs = [s.spec for s in evaluation_scenes("test", 40)]
    k = 8
    world = [world_layouts(spec, k, seed=1000 + i) for i, spec in enumerate(specs)]
    collapsed = [[layouts[0]] * k for layouts in world]
    images = [[np.full((2, 2, 3), j, np.uint8) for j in range(k)] for _ in specs]
    one_image = [[np.zeros((2, 2, 3), np.uint8)] * k for _ in specs]
    varied = diversity_report(specs, world, images)
    same = diversity_report(specs, collapsed, one_image)
    assert same["distinct_layouts"] == 1.0 and varied["distinct_layouts"] >= 7.5
    assert same["distinct_images"] == 1.0 and varied["distinct_images"] == k
    assert same["pairwise_distance"] == 0.0 and varied["pairwise_distance"] > 0.7
    assert varied["pairwise_distance"] == pytest.approx(varied["world/pairwise_distance"], abs=0.1)
    assert same["coverage"] < 0.5 * varied["coverage"]
    assert varied["coverage"] == pytest.approx(varied["world/coverage"], abs=0.15)


def test_coverage_counts_world_layouts_with_a_close_model_layout():
    world = [_layout((0, 0, 400, 400)), _layout((600, 600, 1000, 1000))]
    assert coverage([_layout((0, 0, 400, 400))], world) == 0.5
    assert coverage([_layout((0, 0, 400, 400)), _layout((600, 600, 1000, 1000))], world) == 1.0
    assert coverage([_layout((0, 0, 400, 400))], world, within=0.0) == 0.5
