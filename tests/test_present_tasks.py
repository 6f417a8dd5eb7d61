"""A class-incremental timeline in present (Qt-free): the task colour mode (each sample by
its class's task, old / new at the checkpoint shown, classes not yet learnt greyed; offered
only for a map with tasks) and the Tasks tab's numbers (the snapshot's, at each frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protoview.core.timeline import snapshot_tasks
from protoview.present import Shown, derive
from protoview.present import timeline as present_timeline
from tests import _timeline_fixtures as tf


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> present_timeline.BuiltTimeline:
    """PyCIL task checkpoints whose head grows 4 -> 7 -> 10 classes (three tasks)."""
    paths = tf.write_pycil_tasks(Path(tmp_path_factory.mktemp("pycil")))
    return present_timeline.build(present_timeline.TimelineRequest(
        checkpoints=(str(paths[0].parent / "finetune_*.pkl"),), data="demo", arch=tf.ARCH))


@pytest.fixture()
def shown(built) -> Shown:
    shown = Shown()
    shown.show_snapshot(built.snapshot, class_names=built.class_names)
    return shown


def test_task_codes_are_each_samples_class_task_in_the_head_shown(built, shown):
    tasks = snapshot_tasks(built.snapshot)
    order, labels = tasks["order"], np.asarray(built.snapshot.samples["labels"])
    assert tasks["sizes"] == [4, 3, 3]
    task_of = np.repeat([0, 1, 2], [4, 3, 3])
    expected = np.full(10, -1)
    expected[order] = task_of
    for frame in range(3):
        shown.show_frame(frame)
        codes = derive.sample_codes(shown.state, derive.TASK_MODE)
        want = expected[labels].copy()
        want[want > frame] = -1  # the head of checkpoint `frame` holds tasks 0..frame
        np.testing.assert_array_equal(codes, want)
        legend = derive.task_legend(shown.state)
        texts = [t for _c, t in legend]
        assert texts[:frame + 1] == [*(f"task {j + 1} (old)" for j in range(frame)),
                                     f"task {frame + 1} (new)"]
        assert (texts[-1] == "not yet learnt") is (frame < 2)
        assert [c for c, _t in legend][-1] == (-1 if frame < 2 else 2)
    # the snapshot's own state is the last checkpoint's: every task learnt
    shown.show_snapshot(built.snapshot, class_names=built.class_names)
    assert (derive.task_codes(shown.state) >= 0).all()


def test_task_mode_is_offered_only_for_a_map_with_tasks(built, shown):
    from tests.gui.fakes import random_state

    assert derive.TASK_MODE in derive.available_colour_modes(shown.state)
    shown.set_colour_mode(derive.TASK_MODE)
    shown.show_frame(0)
    assert shown.colour_mode == derive.TASK_MODE
    other = random_state()
    assert derive.TASK_MODE not in derive.available_colour_modes(other)
    assert derive.TASK_MODE not in derive.available_colour_modes(None)
    np.testing.assert_array_equal(derive.task_codes(other), -1)
    assert derive.task_legend(other) == []


def test_tasks_view_reads_the_snapshots_numbers_at_each_frame(built):
    snap = built.snapshot
    tasks = snapshot_tasks(snap)
    assert present_timeline.tasks_view(None) is None
    for frame in range(3):
        view = present_timeline.tasks_view(snap, frame, built.class_names)
        assert view.frame == frame and view.names == ["task 1", "task 2", "task 3"]
        np.testing.assert_array_equal(view.accuracy, tasks["accuracy"])
        np.testing.assert_array_equal(view.forgetting, tasks["forgetting"][frame])
        np.testing.assert_array_equal(view.norms, tasks["class_norm"][frame][tasks["order"]])
        assert view.norm_names == [built.class_names[c] for c in tasks["order"]]
        assert view.bounds == [3.5, 6.5]
        assert f"At finetune_{frame}.pkl</b>" in view.forgetting_text
        assert ("gamma n/a" in view.norm_title) is (frame == 0)
        if frame:
            assert f"WA's gamma {tasks['wa_gamma'][frame]:.3f}" in view.norm_title
        assert f"task {frame + 1} (new)" in view.forgetting_text
        assert f"task {frame + 2}" not in view.forgetting_text
    # a frame's norms: NaN for the classes its head does not hold yet
    first = present_timeline.tasks_view(snap, 0)
    assert np.isfinite(first.norms[:4]).all() and np.isnan(first.norms[4:]).all()
    assert present_timeline.tasks_view(snap).frame == 2
    assert f"{tasks['average_incremental_accuracy']:.1%}" in first.summary


def test_a_timeline_without_tasks_has_no_tasks_view(tmp_path):
    paths = tf.write_epochs(tmp_path)
    built = present_timeline.build(present_timeline.TimelineRequest(
        checkpoints=tuple(str(p) for p in paths), data="demo", arch=tf.ARCH))
    assert present_timeline.tasks_view(built.snapshot) is None
    shown = Shown()
    shown.show_snapshot(built.snapshot)
    assert derive.TASK_MODE not in derive.available_colour_modes(shown.state)
