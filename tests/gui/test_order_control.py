"""The Adapt panel's batch order starts at the open data's own (issue 23, item 3)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("fixed", [False, True])
def test_the_windows_order_control_starts_at_the_datas_own(qapp, fixed) -> None:
    from protoview.gui.panels import AdaptPanel

    panel = AdaptPanel()
    assert panel.request(1).shuffle is True
    panel.set_order(False, "file order, as RobustBench's load_cifar10c", fixed=fixed)
    assert panel.request(1).shuffle is False
    assert panel.order.isEnabled() is not fixed
    assert "RobustBench" in panel.order.toolTip()
    panel.set_order(True)
    assert panel.request(1).shuffle is True and panel.order.isEnabled()
