"""Intervals over scenes, pinned on hand-computed cases."""

import numpy as np
import pytest

from trainer.intervals import bootstrap_interval, paired_difference, per_scene


def test_per_scene_means_group_consecutive_samples():
    assert per_scene([1, 1, 0, 0, 1, 0], 2).tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="do not split"):
        per_scene([1, 0, 1], 2)


def test_bootstrap_of_hand_computable_cases():
    assert bootstrap_interval([0.7] * 10) == pytest.approx((0.7, 0.7))
    # two scenes, 0 and 1: a resample's mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    low, high = bootstrap_interval(np.r_[np.ones(90), np.zeros(10)])
    assert low < 0.9 < high and high - low == pytest.approx(2 * 1.96 * np.sqrt(0.09 / 100), abs=0.02)


def test_scenes_not_images_set_the_width():
    """Eight images of a scene that are all right or all wrong are one observation, not eight."""
    scenes = np.r_[np.ones(45), np.zeros(5)]
    images = np.repeat(scenes, 8)
    by_scene = bootstrap_interval(per_scene(images, 8))
    by_image = bootstrap_interval(images)
    assert (by_scene[1] - by_scene[0]) > 2 * (by_image[1] - by_image[0])


def test_paired_differences_and_ties():
    a = np.r_[np.ones(50), np.zeros(50)]
    b = a.copy()
    b[:3] = 0
    tie = paired_difference(a, b)
    assert tie["difference"] == pytest.approx(0.03) and tie["tie"]
    better = paired_difference(np.ones(100), np.r_[np.ones(60), np.zeros(40)])
    assert better["difference"] == pytest.approx(0.4) and not better["tie"] and better["low"] > 0.25
    with pytest.raises(ValueError, match="differ in number"):
        paired_difference([1, 0], [1])
