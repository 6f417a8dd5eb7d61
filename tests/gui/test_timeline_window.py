"""A timeline of checkpoints in the window: File → Open checkpoints… (built on the worker,
progress per checkpoint, Cancel, bad inputs leave the session as it was), the replay
labelled with the checkpoints' files, the Movers tab (thumbnails, rings, a click focuses,
Before / after between any two), and proxies of a growing head that appear as their classes
arrive (never drawn at NaN); a class-incremental timeline's tasks (the task colour mode,
the Tasks tab)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from protoview.core.snapshot import read_snapshot, write_snapshot
from protoview.core.timeline import snapshot_movers
from protoview.present import timeline as present_timeline
from protoview.present.timeline import TimelineRequest
from tests import _timeline_fixtures as tf


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> list[Path]:
    """PyCIL task checkpoints whose head grows 4 -> 7 -> 10 classes."""
    return tf.write_pycil_tasks(tmp_path_factory.mktemp("pycil"))


@pytest.fixture(scope="module")
def request_(tasks) -> TimelineRequest:
    return TimelineRequest(checkpoints=(str(tasks[0].parent / "finetune_*.pkl"),), data="demo",
                           arch=tf.ARCH)


@pytest.fixture(scope="module")
def built(request_) -> present_timeline.BuiltTimeline:
    return present_timeline.build(request_)


def _build_in(window, qtbot, request: TimelineRequest) -> None:
    with qtbot.waitSignal(window.worker.result, timeout=90000,
                          check_params_cb=lambda u: u.kind == "timeline"):
        window.timelines.build(request)
    qtbot.waitUntil(lambda: window.timelines.panel.snapshot is not None, timeout=5000)


# ---------------------------------------------------------------- present (Qt-free)
def test_the_movers_table_is_the_snapshots_movers_with_their_texts(built):
    snap = built.snapshot
    assert present_timeline.frame_names(snap) == ["finetune_0.pkl", "finetune_1.pkl",
                                                  "finetune_2.pkl"]
    table = present_timeline.movers_table(snap, 0, 2, top=15, class_names=built.class_names)
    movers = snapshot_movers(snap, 1, 3, 15)
    np.testing.assert_array_equal(table.indices, movers.indices[movers.scores > 0])
    np.testing.assert_array_equal(table.distance, movers.distance[table.indices])
    np.testing.assert_array_equal(table.before, snap.timeline[0]["predictions"][table.indices])
    np.testing.assert_array_equal(table.after, snap.timeline[2]["predictions"][table.indices])
    # "n of k neighbours new" is the count of B's neighbours not in A's list
    n, k = len(snap.samples["labels"]), 10
    knn = [np.asarray(snap.history["knn_indices"][i]).reshape(n, k) for i in (0, 2)]
    for i, text in zip(table.indices, table.texts, strict=True):
        new = len(set(knn[1][i]) - set(knn[0][i]))
        assert f"#{i} · label " in text and f"\n{new} of {k} neighbours new" in text
    assert "finetune_0.pkl</b> to <b>finetune_2.pkl" in table.header
    same = present_timeline.movers_table(snap, 1, 1)
    assert same.indices.size == 0 and "against itself" in same.header


def test_a_glob_matching_nothing_and_an_empty_list_say_so(tmp_path):
    paths, problem = present_timeline.expand([str(tmp_path / "epoch_*.pt")])
    assert paths == [] and "matches no file" in problem


# ---------------------------------------------------------------- the window
def test_open_checkpoints_builds_the_timeline_and_shows_its_replay(window, qtbot, tasks):
    dialog = window.timelines.choose()
    dialog.glob.setText(str(tasks[0].parent / "finetune_*.pkl"))
    dialog.arch.setText(tf.ARCH)
    dialog.data.setText("demo")
    assert dialog.found.text() == ("3 checkpoints, in this order: finetune_0.pkl, "
                                   "finetune_1.pkl, finetune_2.pkl")
    assert dialog.build_button.isEnabled()
    phases: list[str] = []
    window.worker.progress.connect(lambda _d, _t, what: phases.append(what))
    with qtbot.waitSignal(window.worker.result, timeout=90000,
                          check_params_cb=lambda u: u.kind == "timeline"):
        dialog.accept()
    qtbot.waitUntil(lambda: window.timelines.panel.snapshot is not None, timeout=5000)
    # progress per checkpoint, named
    for i, name in enumerate(("finetune_0.pkl", "finetune_1.pkl", "finetune_2.pkl"), 1):
        assert any(p.startswith(f"{name} ({i} of 3): ") for p in phases), phases
    shown = window.shown
    assert present_timeline.is_timeline(shown.snapshot)
    assert window.windowTitle() == "protoview — timeline of 3 checkpoints"
    # the replay: one frame per checkpoint, each labelled with its file
    bar = window.replay_bar
    assert bar.isVisible() and bar.slider.maximum() == 2
    assert bar.label.text() == "finetune_2.pkl  (3/3)"
    assert window.map_label.text() == "map of finetune_2.pkl (3 of 3)"
    bar.slider.setValue(0)
    assert bar.label.text() == "finetune_0.pkl  (1/3)"
    assert window.map_label.text() == "map of finetune_0.pkl (1 of 3)"
    assert shown.caption().startswith("finetune_0.pkl (1 of 3) · accuracy ")
    # the chart: the accuracy of each checkpoint up to the one shown
    accuracy = shown.snapshot.history["accuracy"]
    assert [h.full_accuracy for h in shown.history] == [accuracy[0]]
    bar.slider.setValue(2)
    assert [h.full_accuracy for h in shown.history] == list(accuracy)
    window.numbers_now()
    plot = window.numbers.accuracy_plot.getPlotItem()
    assert plot.titleLabel.text.startswith("Accuracy over checkpoints")
    assert plot.getAxis("bottom").labelText == "checkpoint"
    # the movers: A the first, B the last, thumbnails from the data, ringed on the map
    panel = window.timelines.panel
    tabs = window.numbers.tabs
    assert tabs.isTabVisible(tabs.indexOf(panel)) and tabs.currentWidget() is panel
    assert (panel.a_combo.currentText(), panel.b_combo.currentText()) == (
        "finetune_0.pkl", "finetune_2.pkl")
    assert panel.list.count() == 20 and panel.note.isHidden()
    assert not panel.list.item(0).icon().isNull()
    data = window.data_panel  # the data's images previewed, not reopened from there
    assert data.isEnabled() and data.stored_image.pixmap() is not None
    assert not data.stored_image.pixmap().isNull() and not data.apply_button.isEnabled()
    np.testing.assert_array_equal(shown.selection, np.sort(panel.indices()))
    np.testing.assert_array_equal(np.sort(window.view.selection), np.sort(panel.indices()))


def test_the_dialog_takes_picked_files_in_natural_order_or_as_given(window, tmp_path):
    files = [str(tmp_path / n) for n in ("epoch_10.pt", "epoch_2.pt", "epoch_1.pt")]
    for f in files:
        Path(f).write_bytes(b"")
    dialog = window.timelines.choose()
    assert not dialog.build_button.isEnabled() and "Add checkpoint files" in dialog.found.text()
    dialog.add_files(files + files[:1])  # each once
    assert dialog.file_list() == files
    assert dialog.found.text().endswith("in this order: epoch_1.pt, epoch_2.pt, epoch_10.pt")
    dialog.keep_order.setChecked(True)
    assert dialog.found.text().endswith("in this order: epoch_10.pt, epoch_2.pt, epoch_1.pt")
    dialog.files.item(0).setSelected(True)
    dialog.remove_button.click()
    dialog.k.setValue(5)
    request = dialog.request()
    assert request.checkpoints == tuple(files[1:]) and request.keep_order and request.k == 5
    assert request.data == "demo"  # the open session's data (the demo's), as given
    dialog.reject()


def test_movers_focus_follow_and_before_after_between_two_checkpoints(window, qtbot, request_):
    _build_in(window, qtbot, request_)
    panel, shown = window.timelines.panel, window.shown
    first = int(panel.indices()[0])
    panel.list.itemClicked.emit(panel.list.item(0))
    assert shown.marked == first and window.view.focus_index == first
    assert window.numbers.tabs.currentWidget() is panel  # the list stays for the next one
    panel.top.setValue(5)
    assert panel.list.count() == 5 and len(shown.selection) == 5
    panel.ring.setChecked(False)
    assert len(shown.selection) == 0
    # follow the replay: B the frame shown, A the one before
    panel.follow.setChecked(True)
    window.replay_bar.slider.setValue(1)
    assert (panel.a_combo.currentIndex(), panel.b_combo.currentIndex()) == (0, 1)
    # the marked mover's neighbours follow the frame, listed in place: the Movers stay
    assert window.numbers.tabs.currentWidget() is panel and shown.marked == first
    # a box picked by hand ends following; Before / after between any two: B on the
    # map, A beside it, and the pair kept
    panel.b_combo.setCurrentIndex(0)
    assert not panel.follow.isChecked()
    panel.follow.setChecked(True)
    window.timelines.compare(2, 0)
    assert window.compare.on and shown.frame == 0 and not panel.follow.isChecked()
    assert (panel.a_combo.currentIndex(), panel.b_combo.currentIndex()) == (2, 0)
    assert window.compare.before_title.text().startswith("before: finetune_2.pkl (3 of 3)")
    assert window.compare.after_title.text().startswith("after: finetune_0.pkl (1 of 3)")
    np.testing.assert_array_equal(window.compare.view.state.embedding,
                                  shown.snapshot.timeline[2]["embedding"])
    np.testing.assert_array_equal(window.view.state.embedding,
                                  shown.snapshot.timeline[0]["embedding"])


def test_proxies_appear_as_their_classes_arrive_and_none_is_drawn_at_nan(window, qtbot,
                                                                         request_, tmp_path):
    _build_in(window, qtbot, request_)
    heads = list(window.shown.snapshot.history["head_classes"])
    assert heads == [4, 7, 10]
    for frame, head in enumerate(heads):
        window.replay_bar.slider.setValue(frame)
        window.view.finish_animation()
        state = window.view.state
        assert np.isfinite(state.proxies_embedding).all(axis=1).sum() == head  # padded NaN
        data = window.view.items["proxies"].data
        placed = np.isfinite(data["x"]) & np.isfinite(data["y"])
        assert placed.sum() == head
        # the legend counts the proxies drawn; the lines go only to placed proxies
        texts = [label.text for _sample, label in window.view.legend.items]
        assert f"proxies ({head})" in texts
        x, y = window.view.items["proxy_lines"].getData()
        assert x is None or np.isfinite(x).all() and np.isfinite(y).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "invalid value" from drawing NaN
            window.view.grab()
    # a replay's export grabs frame after frame with no turn of the event loop between:
    # the legend, rebuilt for another proxy count, is laid out at once
    def spots() -> list[tuple[float, float]]:
        return [(label.pos().x(), label.pos().y()) for _s, label in window.view.legend.items]

    for state in window.shown.frame_states():
        window.view.set_state(state, animate=False)
        placed = spots()
        qtbot.wait(10)  # a turn of the event loop moves no entry
        assert spots() == placed
    window.replay_bar.slider.setValue(0)
    window.view.finish_animation()
    svg = Path(window.export_map(str(tmp_path / "first.svg")))
    assert "nan" not in svg.read_text().lower()
    assert window.export_replay(str(tmp_path / "timeline.gif")) == 3  # a frame a checkpoint


def test_a_snapshot_alone_lists_movers_without_images(window, qtbot, built, tmp_path):
    path = tmp_path / "t.h5"
    write_snapshot(str(path), built.snapshot)
    with qtbot.waitSignal(window.worker.result, timeout=10000):
        window.open_snapshot(str(path))
    qtbot.waitUntil(lambda: window.timelines.panel.snapshot is not None, timeout=5000)
    panel = window.timelines.panel
    assert panel.list.count() == 20 and panel.list.item(0).icon().isNull()
    assert window.numbers.tabs.currentWidget() is panel  # a timeline opens on its movers
    assert panel.note.isVisible() and "No thumbnails" in panel.note.text()
    assert window.replay_bar.label.text() == "finetune_2.pkl  (3/3)"
    # a live result ends the snapshot: no Movers tab
    from protoview.core.state import state_from_snapshot
    from protoview.present import Update

    window.shown.apply(Update(kind="step", state=state_from_snapshot(read_snapshot(str(path)))))
    qtbot.waitUntil(lambda: panel.snapshot is None, timeout=5000)
    tabs = window.numbers.tabs
    assert not tabs.isTabVisible(tabs.indexOf(panel)) and len(window.shown.selection) == 0
    assert tabs.isTabVisible(tabs.indexOf(window.numbers.balance_tab))  # the live one's back


def test_bad_inputs_and_cancel_leave_the_open_session_as_it_was(opened, qtbot, tasks, tmp_path):
    window = opened
    window.raise_errors = False
    state, title = window.shown.state, window.windowTitle()
    # checkpoints of two architectures: one line naming the file
    a = tf.write_demo_format(tmp_path / "a.pt", feature_dim=64)
    b = tf.write_demo_format(tmp_path / "b.pt", feature_dim=32)
    with qtbot.waitSignal(window.worker.failed, timeout=30000):
        window.timelines.build(TimelineRequest(checkpoints=(str(a), str(b)), data="demo"))
    assert window.error_box.isVisible()
    text = window.error_box.text()
    assert "b.pt" in text and "one architecture" in text and "\n" not in text
    window.error_box.hide()
    # a head that does not hold the data's classes
    with qtbot.waitSignal(window.worker.failed, timeout=30000):
        window.timelines.build(TimelineRequest(checkpoints=(str(tasks[0]),), data="demo",
                                               arch=tf.ARCH))
    assert "finetune_0.pkl" in window.error_box.text() and "4 classes" in window.error_box.text()
    window.error_box.hide()
    # a glob matching nothing: the dialog says so and does not build
    dialog = window.timelines.choose()
    dialog.glob.setText(str(tmp_path / "nothing_*.pt"))
    assert "matches no file" in dialog.found.text() and not dialog.build_button.isEnabled()
    dialog.reject()
    # Cancel as soon as it started (the checkpoints are checked, none is extracted)
    window.worker.progress.connect(
        lambda _d, _t, what: window.cancel_job() if what.startswith("checking") else None)
    with qtbot.waitSignal(window.worker.cancelled, timeout=60000):
        window.timelines.build(TimelineRequest(
            checkpoints=(str(tasks[0].parent / "finetune_*.pkl"),), data="demo", arch=tf.ARCH))
    assert window.shown.state is state and window.shown.snapshot is None
    assert window.windowTitle() == title and window.timelines.panel.snapshot is None


def test_a_class_incremental_timeline_shows_its_tasks(window, qtbot, request_):
    """The task colour mode (old / new at the checkpoint shown, classes not yet learnt
    grey) and the Tasks tab (accuracy per task, forgetting, weight norms with the task
    boundaries and WA's gamma), both following the replay."""
    from protoview.core.timeline import snapshot_tasks
    from protoview.gui.map._palette import UNKNOWN_COLOR, class_colors
    from protoview.present import derive

    _build_in(window, qtbot, request_)
    shown, tabs, panel = window.shown, window.numbers.tabs, window.timelines.tasks
    tasks = snapshot_tasks(shown.snapshot)
    qtbot.waitUntil(lambda: panel.view is not None, timeout=5000)
    assert tabs.isTabVisible(tabs.indexOf(panel))
    assert not tabs.isTabVisible(tabs.indexOf(window.numbers.balance_tab))  # no plan to balance
    assert derive.TASK_MODE in window.available_colour_modes()
    window.set_color_mode(derive.TASK_MODE)
    assert shown.colour_mode == derive.TASK_MODE
    for frame in range(3):
        window.replay_bar.slider.setValue(frame)
        window.view.finish_animation()
        texts = [label.text for _s, label in window.view.legend.items]
        assert f"task {frame + 1} (new)" in texts
        assert ("not yet learnt" in texts) is (frame < 2)
        codes = window.view.sample_codes()
        assert codes.max() == frame
        brushes = window.view.items["samples"].data["brush"]
        grey = [b.color().name() for b, c in zip(brushes, codes, strict=True) if c < 0]
        assert set(grey) <= {UNKNOWN_COLOR}
        new = {b.color().name() for b, c in zip(brushes, codes, strict=True) if c == frame}
        assert new == {class_colors(3)[frame]}
        # the Tasks tab at the checkpoint shown
        assert panel.view.frame == frame and panel.now_line.value() == frame + 1
        assert panel.norm_plot.getPlotItem().titleLabel.text.startswith("Weight norm per class")
        assert f"At finetune_{frame}.pkl" in panel.forgetting.text()
        assert f"task {frame + 1} (new)" in panel.forgetting.text()
        heights = panel.norm_bars.opts["height"]
        np.testing.assert_allclose(
            heights, np.nan_to_num(tasks["class_norm"][frame][tasks["order"]]))
    assert [line.value() for line in panel.bound_lines] == [3.5, 6.5]
    assert panel.accuracy_legend.texts() == ["task 1", "task 2", "task 3"]
    for j, curve in enumerate(panel.curves):
        y, want = curve.getData()[1], tasks["accuracy"][:, j]
        np.testing.assert_array_equal(y[np.isfinite(y)], want[np.isfinite(want)])
    # a plain timeline (no tasks): no Tasks tab, no task mode
    folder = Path(request_.checkpoints[0]).parent.parent / "epochs"
    folder.mkdir(exist_ok=True)
    epochs = tf.write_epochs(folder)
    _build_in(window, qtbot, TimelineRequest(checkpoints=tuple(str(p) for p in epochs),
                                             data="demo", arch=tf.ARCH))
    qtbot.waitUntil(lambda: panel.view is None, timeout=5000)
    assert not tabs.isTabVisible(tabs.indexOf(panel))
    assert derive.TASK_MODE not in window.available_colour_modes()
    assert shown.colour_mode != derive.TASK_MODE


def test_geometry_curves_talk_size_and_the_task_colours_exported(window, qtbot, request_,
                                                                 tmp_path):
    """Numbers → Geometry on a replayed timeline shows each checkpoint's stored numbers and
    the curves along the checkpoints (the one shown dashed); talk size grows the Tasks and
    Geometry charts' text and gives it back; the map coloured by task exported as SVG and
    PDF opens in librsvg / poppler, without 'nan', with the task legend's entries."""
    import shutil
    import subprocess

    from protoview.gui.map._palette import class_colors
    from protoview.present import derive

    _build_in(window, qtbot, request_)
    shown, panel = window.shown, window.geometry
    snap = shown.snapshot
    window.geometry_dock.open()
    for frame in (0, 2, 1):
        window.replay_bar.slider.setValue(frame)
        window.geometry_dock.redraw()  # what the dock does when it is in front
        assert panel.now_lines[0].value() == frame + 1
        assert "stored in the snapshot" in panel.header.text()
        assert panel.numbers.item(0, 1).text() == format(snap.geometry["nc1"][frame], ".4g")
    x, y = panel.nc1_curve.getData()
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_array_equal(y, snap.geometry["nc1"])
    x, y = panel.along_curves[1][2][1].getData()  # linear CKA to the first checkpoint
    assert y[0] == pytest.approx(1.0) and len(y) == 3
    assert panel.along_legends[1].texts()[-1] == "linear CKA vs first checkpoint"
    # talk size on the Tasks tab (and the Geometry view), and back
    tasks = window.timelines.tasks

    def sizes() -> list[float]:
        return [tasks.accuracy_plot.getAxis("left").style["tickFont"].pointSizeF(),
                tasks.norm_plot.getAxis("bottom").style["tickFont"].pointSizeF(),
                tasks.accuracy_legend.text_font.pointSizeF(),
                panel.nc1_plot.getAxis("left").style["tickFont"].pointSizeF()]

    window.toggle_presentation(True)
    try:
        assert sizes() == pytest.approx([8.5 * 1.6, 8.5 * 1.6, 8.0 * 1.6, 8.5 * 1.6])
        assert tasks.norm_plot.getPlotItem().titleLabel.opts["size"] == "16.8pt"
    finally:
        window.toggle_presentation(False)
    assert sizes() == pytest.approx([8.5, 8.5, 8.0, 8.5])
    # the map coloured by task, exported as drawings
    window.set_color_mode(derive.TASK_MODE)
    window.replay_bar.slider.setValue(0)
    window.view.finish_animation()
    svg = Path(window.export_map(str(tmp_path / "tasks.svg")))
    pdf = Path(window.export_map(str(tmp_path / "tasks.pdf")))
    text = svg.read_text()
    assert "nan" not in text.lower()
    for entry in ("task 1 (new)", "not yet learnt"):
        assert entry in text
    new = class_colors(3)[0]
    assert new.lower() in text.lower()  # the task's colour is drawn
    if shutil.which("pdftotext"):
        words = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
        assert "task 1 (new)" in words and "not yet learnt" in words
        assert "nan" not in words.lower()
    from PIL import Image

    for tool, cmd in (("rsvg-convert", ["rsvg-convert", str(svg), "-o", str(tmp_path / "s.png")]),
                      ("pdftoppm", ["pdftoppm", "-png", "-singlefile", str(pdf),
                                    str(tmp_path / "p")])):
        if not shutil.which(tool):
            continue
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        out = tmp_path / ("s.png" if tool == "rsvg-convert" else "p.png")
        rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
        want = np.array([int(new[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(rgb - want).max(axis=2) <= 40).sum() > 50, tool  # task 1's glyphs
