"""PyCIL's seeded class order (issue 23, item 4): ``--class-order pycil|pycil:SEED|FILE|data``.

PyCIL (G-U-N/PyCIL 87cc411, ``utils/data_manager.py`` ``DataManager._setup_data``) trains
with ``np.random.seed(seed); order = np.random.permutation(C).tolist()`` (every config in
``exps/``: ``shuffle: true, seed: [1993]``) and maps each label ``y`` to ``order.index(y)``
(``_map_new_class_index``): head class ``k`` is the dataset's class ``order[k]``. protoview
puts the head's logits in the data's order (by default for a PyCIL checkpoint whose head
holds every class of the data), and ``info`` says one consistent thing about it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoview.cli import main
from protoview.core.opening import open_model_and_data, pycil_class_order
from tests import _ckpt_fixtures as fx
from tests._benchmark_fixtures import make_cifar_c
from tests.oracles import pycil_cifar_resnet as pycil


def _pycils_order(classes: int, seed: int) -> list[int]:
    """The lines of PyCIL's ``DataManager._setup_data`` that draw the order, verbatim."""
    order = [i for i in range(classes)]
    np.random.seed(seed)
    order = np.random.permutation(len(order)).tolist()
    return order


@pytest.mark.parametrize(("classes", "seed"), [(10, 1993), (100, 1993), (100, 1994), (7, 0)])
def test_the_order_is_pycils(classes: int, seed: int) -> None:
    np.random.seed(5)
    before = np.random.random()
    np.random.seed(5)
    assert list(pycil_class_order(classes, seed)) == _pycils_order(classes, seed)
    np.random.seed(5)
    pycil_class_order(classes, seed)
    assert np.random.random() == before  # numpy's global generator is left alone


def _pycil_checkpoint(tmp_path, classes: int = 10):
    torch.manual_seed(0)
    convnet, fc = pycil.resnet32(), pycil.SimpleLinear(64, classes)
    with torch.no_grad():
        fc.bias.normal_()
    convnet.eval()
    path = fx.write_pycil(tmp_path / "icarl_1.pkl", convnet.state_dict(), fc.state_dict())
    root, labels = make_cifar_c(tmp_path / "CIFAR-10-C", ("fog",), n=12)
    return path, convnet, fc, f"cifar10c:{root}:fog:5", labels[4 * 12:]


def test_a_pycil_head_is_put_in_the_datas_order_by_default(tmp_path, capsys) -> None:
    """protoview's logit for data class y is PyCIL's logit for head class order.index(y), to
    the bit; its accuracy is PyCIL's (argmax == the mapped label)."""
    path, convnet, fc, data, labels = _pycil_checkpoint(tmp_path)
    model, dataset = open_model_and_data(str(path), data, arch="pycil:resnet32")
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    order = _pycils_order(10, 1993)
    with torch.no_grad():
        theirs = pycil.incremental_logits(convnet, fc, x)
        ours = model.eval()(x)
    assert torch.equal(ours, theirs[:, [order.index(y) for y in range(10)]])
    mapped = np.array([order.index(int(y)) for y in labels])  # PyCIL's test targets
    assert np.array_equal(ours.argmax(1).numpy() == labels, theirs.argmax(1).numpy() == mapped)
    notes = " | ".join(model.info.notes)
    assert "class order PyCIL's, seed 1993 (its configs)" in notes
    assert "PyCIL numbers classes" not in notes  # the remark became the order applied

    plain, _ = open_model_and_data(str(path), data, arch="pycil:resnet32", class_order="data")
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), theirs)
    other, _ = open_model_and_data(str(path), data, arch="pycil:resnet32",
                                   class_order="pycil:7")
    seven = _pycils_order(10, 7)
    with torch.no_grad():
        assert torch.equal(other.eval()(x), theirs[:, [seven.index(y) for y in range(10)]])
    order_file = tmp_path / "order.txt"
    order_file.write_text(", ".join(str(v) for v in seven) + "\n")
    from_file, _ = open_model_and_data(str(path), data, arch="pycil:resnet32",
                                       class_order=str(order_file))
    with torch.no_grad():
        assert torch.equal(from_file.eval()(x), other.eval()(x))


def test_info_says_one_thing_about_the_order(tmp_path, capsys) -> None:
    path, _convnet, _fc, data, _labels = _pycil_checkpoint(tmp_path)
    argv = ["info", str(path), data, "--arch", "pycil:resnet32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "matched through the class order PyCIL's, seed 1993 (its configs)" in out
    assert "PyCIL numbers classes" not in out and "matched by position" not in out
    assert main([*argv, "--class-order", "data"]) == 0
    out = capsys.readouterr().out
    assert "matched through the class order the data's (--class-order data)" in out
    assert "PyCIL numbers classes" not in out


def test_a_task_checkpoint_keeps_the_remark_and_cannot_take_an_order(tmp_path, capsys) -> None:
    """A head of 20 classes (task 2 of a 10 + 10 run) on data of 10: no order applies; info
    keeps PyCIL's remark and says why the classes cannot be matched; --class-order pycil is
    refused in one line naming the option."""
    path, *_rest = _pycil_checkpoint(tmp_path, classes=20)
    data = _rest[2]
    assert main(["info", str(path), data, "--arch", "pycil:resnet32"]) == 0
    out = capsys.readouterr().out
    assert "PyCIL numbers classes" in out and "cannot be matched: the head has 20 classes" in out
    argv = ["export", str(path), data, "--arch", "pycil:resnet32", "--class-order", "pycil",
            "--out", str(tmp_path / "x.h5")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--class-order" in err[0] and "the head has 20 classes" in err[0]


@pytest.mark.parametrize(("option", "words"), [
    ("pycil:abc", "pycil:SEED takes an integer seed"),
    ("nonsense", "expected auto, data, pycil, pycil:SEED or a file"),
    ("FILE:1 2 3", "not an order of the data's 10 classes"),
    ("FILE:0 1 2 3 4 5 6 7 8 8", "not an order of the data's 10 classes"),
    ("FILE:zero one", "holds class indices"),
])
def test_bad_orders_are_one_line(tmp_path, capsys, option: str, words: str) -> None:
    path, _convnet, _fc, data, _labels = _pycil_checkpoint(tmp_path)
    if option.startswith("FILE:"):
        bad = tmp_path / "bad_order.txt"
        bad.write_text(option[5:])
        option = str(bad)
    assert main(["info", str(path), data, "--arch", "pycil:resnet32",
                 "--class-order", option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
