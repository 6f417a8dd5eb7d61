"""The Numbers dock's charts stay readable (issue 20): the tabs never squash the accuracy
chart."""

from __future__ import annotations


# ------------------------------------------------------------------ 5. the tabs
def test_the_tabs_never_squash_the_accuracy_chart(opened, qtbot) -> None:
    w = opened
    w.resize(1400, 900)
    n = w.numbers
    for talk in (False, True):
        w.toggle_presentation(talk)
        qtbot.wait(100)
        heights = {}
        for i in range(n.tabs.count()):
            n.tabs.setCurrentIndex(i)
            qtbot.wait(30)
            heights[n.tabs.tabText(i)] = n.accuracy_plot.height()
        assert len(set(heights.values())) == 1, (talk, heights)  # Balance, Neighbours: same
        assert n.accuracy_plot.height() > 100
    w.toggle_presentation(False)
