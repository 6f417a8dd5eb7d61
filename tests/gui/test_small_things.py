"""The smaller things a new user tripped over (issue 20, item 11), each at its cause."""

from __future__ import annotations

from PySide6 import QtWidgets

from protoview.present import KMeansRequest, StepRequest


def _wait(qtbot, w, kind: str, request) -> None:
    with qtbot.waitSignal(w.worker.result, timeout=5000,
                          check_params_cb=lambda r: r.kind == kind and not r.partial):
        w.submit(request)


def test_kmeans_does_not_reframe_the_map(opened, qtbot):
    """The samples did not move: the view stays where it was (the legend's new line used to
    re-fit the view, and everything seemed to jump)."""
    w = opened
    w.view.finish_animation()
    before = w.view.getViewBox().viewRange()
    _wait(qtbot, w, "kmeans", KMeansRequest(k=5))
    w.view.finish_animation()
    assert w.view.getViewBox().viewRange() == before
    assert len(w.state.prototypes) == 5
    # the status line says which k-means path ran (issue 24)
    assert w.status_label.text().endswith("· k-means auto: (the fake's path)")
    assert w.kmeans_panel.request().init == "auto"


def test_the_controls_have_no_horizontal_scroll_bar_and_are_never_cut(opened, qtbot):
    w = opened
    w.resize(1400, 860)
    qtbot.wait(50)
    scroll = w.controls_dock.scroll
    from PySide6 import QtCore

    assert scroll.horizontalScrollBarPolicy() == QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert scroll.viewport().width() >= w.controls_dock.controls.minimumSizeHint().width()
    apply = next(b for b in w.data_panel.findChildren(QtWidgets.QPushButton) if b.text() == "Apply")
    right = apply.mapTo(scroll.viewport(), apply.rect().topRight()).x()
    assert right <= scroll.viewport().width()  # the Apply button is whole


def test_the_dataset_name_is_whole(opened):
    w = opened
    name = "demo digits, test part, shift gaussian noise, severity 3: 539 images"
    w.data_panel.show_data(name, "", "", None, None, 539)
    assert w.data_panel.name_label.text() == name


def test_clearing_the_mark_clears_the_go_to_box_and_the_status(opened, qtbot):
    w = opened
    _wait(qtbot, w, "step", StepRequest(n_steps=1))
    last = w.status_label.text()
    w.map_bar.goto_edit.setText("7")
    w.go_to_typed_sample()
    assert w.shown.marked == 7 and "#7" in w.status_label.text()
    w.view.clear_marks()
    assert w.map_bar.goto_edit.text() == "" and w.status_label.text() == last


def test_the_after_title_of_before_after_is_whole(opened, qtbot):
    w = opened
    w.resize(1400, 860)
    _wait(qtbot, w, "step", StepRequest(n_steps=9))
    # what a real run's state says (the fake session writes no method)
    w.shown.state.attrs.update(method="tsd", params={"variant": "reference"}, step=9)
    w.shown.events.state.emit(w.shown.state)
    w.toggle_compare(True)
    qtbot.wait(200)
    title = w.compare.after_title
    assert title.shown_text() == title.full_text() and "step 9" in title.full_text()
    w.toggle_compare(False)
