"""Class-incremental runs on a timeline (issue 22, item 2): tasks, PyCIL's class order for
task checkpoints, accuracy per task, old / new, forgetting, average incremental accuracy,
weight norms and WA's gamma, each equal to PyCIL's own code (``tests/oracles/
pycil_incremental.py``, G-U-N/PyCIL 87cc411) on checkpoints its classes wrote.

The run: PyCIL's CIFAR ResNet-32 and a head grown by its own ``update_fc`` over three tasks
of 4 classes on a 12-class ``.npz``, in PyCIL's class order (seed 1993), saved in its
``save_checkpoint`` layout; a ``SimpleLinear`` head (iCaRL, WA, ...), a ``CosineLinear``
one (``SimpleCosineIncrementalNet``) and PODNet's ``CosineIncrementalNet`` with 2 proxies a
class (a ``CosineLinear`` for the first task, ``SplitCosineLinear`` after it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from protoview.cli._main import main
from protoview.core.opening import pycil_class_order
from protoview.core.timeline import (
    OpenOptions,
    Tasks,
    average_incremental_accuracy,
    build_timeline,
    forgetting,
    mean_forgetting,
    snapshot_tasks,
    task_accuracy,
    tasks_for,
    wa_gamma,
)
from protoview.errors import ParameterError
from tests import _ckpt_fixtures as fx
from tests import _timeline_fixtures as tf
from tests.oracles import pycil_cifar_resnet as pycil
from tests.oracles import pycil_incremental as ref

CLASSES, SIZES, PER_CLASS = 12, (4, 4, 4), 4
PROXIES = {"linear": 1, "cosine": 1, "split": 2}  # rows per class of each head
ORDER = list(pycil_class_order(CLASSES))
OPTIONS = OpenOptions(arch="pycil:resnet32")


def _data(folder: Path) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    rng.shuffle(labels)
    x = rng.random((len(labels), 3, 32, 32), dtype=np.float32) * 0.5
    x += labels[:, None, None, None] / (2 * CLASSES)  # a class signal, pixels in [0, 1]
    path = folder / "twelve.npz"
    np.savez(path, x=x, y=labels, class_names=np.array([f"c{i}" for i in range(CLASSES)]))
    return str(path), labels


def _rows(fc) -> torch.Tensor:
    """A PyCIL head's rows in head order (its SplitCosineLinear has no ``weight``)."""
    if hasattr(fc, "fc1"):
        return torch.cat([fc.fc1.weight, fc.fc2.weight]).detach()
    return fc.weight.detach()


def _write_run(folder: Path, head: str) -> tuple[list[Path], object, list]:
    """PyCIL's run: the convnet and each task's head, saved as its save_checkpoint does."""
    torch.manual_seed(0)
    convnet = pycil.resnet32().eval()
    net = {"linear": ref.IncrementalNet, "cosine": ref.SimpleCosineIncrementalNet,
           "split": lambda d: ref.CosineIncrementalNet(d, nb_proxy=PROXIES["split"])}[head](64)
    generator = torch.Generator().manual_seed(1)
    paths, heads, seen = [], [], 0
    for task, size in enumerate(SIZES):
        seen += size
        if head == "split":
            net.update_fc(seen, task)
        elif head == "linear" or net.fc is None:
            net.update_fc(seen)
        else:  # a task's new rows, as FeTrIL / SimpleCIL initialise them
            net.update_fc(seen, torch.randn(size, 64, generator=generator))
        with torch.no_grad():  # the new classes' rows longer: the bias WA corrects
            new = net.fc.fc2.weight if task and head == "split" else net.fc.weight[
                (seen - size) * PROXIES[head]:]
            new *= 1.5 + task
            if head == "linear":
                net.fc.bias[seen - size:] = 0.1 * torch.randn(size, generator=generator)
        heads.append(copy.deepcopy(net.fc))
        paths.append(fx.write_pycil(folder / f"wa_{task}.pkl", convnet.state_dict(),
                                    net.fc.state_dict(), task=task))
    return paths, convnet, heads


@pytest.fixture(scope="module", params=["linear", "cosine", "split"])
def run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"pycil_{request.param}")
    data, labels = _data(folder)
    paths, convnet, heads = _write_run(folder, request.param)
    tl = build_timeline([str(p) for p in paths], data, OPTIONS, with_map=False, use_cache=False)
    return request.param, data, labels, paths, convnet, heads, tl


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[str, list[Path]]:
    """The data and the SimpleLinear run's checkpoints (no timeline built)."""
    folder = tmp_path_factory.mktemp("pycil_files")
    data, _labels = _data(folder)
    return data, _write_run(folder, "linear")[0]


@pytest.fixture(scope="module")
def epochs(tmp_path_factory) -> list[Path]:
    return tf.write_epochs(tmp_path_factory.mktemp("epochs"), epochs=2)


# ---------------------------------------------------------------- PyCIL's numbers, on its run
def test_a_pycil_run_scores_as_pycils_trainer(run, tmp_path) -> None:
    """Per task checkpoint: the predictions are PyCIL's (head class k -> data class
    order[k]), the accuracy per task, old, new and total are its ``accuracy()`` on them, the
    forgetting and the average accuracy its trainer's, WA's gamma its ``weight_align``'s,
    the class norms ``torch.norm`` of its rows; to the bit."""
    kind, data, labels, paths, convnet, heads, tl = run
    assert tl.tasks.sizes == SIZES and tl.tasks.order == tuple(ORDER)
    assert tl.tasks.source == "the heads' sizes"
    from protoview.core.opening import open_model_and_data

    model, dataset = open_model_and_data(str(paths[-1]), data, arch="pycil:resnet32")
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    y_true_all = np.array([ORDER.index(int(y)) for y in labels])  # PyCIL's targets
    cnn_matrix, top1, known = [], [], 0
    for task, (step, fc) in enumerate(zip(tl.steps, heads, strict=True)):
        seen = known + SIZES[task]
        with torch.no_grad():
            logits = pycil.incremental_logits(convnet, fc, x)
        y_pred_all = logits.argmax(1).numpy()
        assert np.array_equal(step.frame["predictions"], np.array(ORDER)[y_pred_all])
        keep = y_true_all < seen  # PyCIL's test set: the classes seen so far
        grouped = ref.accuracy(y_pred_all[keep], y_true_all[keep], known, increment=4)
        row = ref.cnn_matrix_row(grouped)
        cnn_matrix.append(row)
        top1.append(grouped["total"])
        ours = step.tasks
        assert list(np.around(ours.accuracy[: task + 1] * 100, 2)) == row
        assert np.isnan(ours.accuracy[task + 1:]).all()
        assert np.around(step.accuracy * 100, 2) == grouped["total"]
        assert np.around(ours.new * 100, 2) == grouped["new"]
        if task == 0:
            assert np.isnan(ours.old) and grouped["old"] == 0  # PyCIL: 0 without old classes
        else:
            assert np.around(ours.old * 100, 2) == grouped["old"]
            net = ref.IncrementalNet(64)  # its weight_align on the head's rows
            net.fc = pycil.SimpleLinear(64, len(_rows(fc)))
            net.fc.weight.data = _rows(fc).clone()
            assert ours.wa_gamma == float(net.weight_align(SIZES[task] * PROXIES[kind]))
        p = PROXIES[kind]
        norms = torch.norm(_rows(fc), p=2, dim=1).numpy().astype(np.float64)
        for k in range(seen):
            assert ours.class_norm[ORDER[k]] == norms[k * p:(k + 1) * p].sum() / p
        assert np.isnan(ours.class_norm[ORDER[seen:]]).all()
        known = seen
    theirs, table = ref.trainer_forgetting(cnn_matrix, len(SIZES) - 1)
    rounded = np.around(tl.task_matrix() * 100, 2)
    assert np.array_equal(np.nan_to_num(rounded.T), table)
    assert mean_forgetting(rounded, len(SIZES)) == theirs
    assert tl.mean_forgetting() == pytest.approx(theirs / 100, abs=1e-4)
    sizes = [s.head_classes for s in tl.steps]
    assert average_incremental_accuracy(np.around([s.accuracy * 100 for s in tl.steps], 2),
                                        sizes) == ref.average_accuracy(top1)
    if kind != "cosine":  # the new rows were made longer: WA's gamma < 1
        assert all(s.tasks.wa_gamma < 1 for s in tl.steps[1:])


def test_the_grouped_accuracy_and_forgetting_on_random_predictions() -> None:
    """Thirty classes in three tasks of ten (PyCIL's fixed groups of 10 are then the tasks):
    task_accuracy equals ``accuracy()``; forgetting equals the trainer's on any matrix."""
    rng = np.random.default_rng(3)
    order = list(pycil_class_order(30))
    tasks = Tasks((10, 10, 10), tuple(order), "--tasks")
    for seen in (10, 20, 30):
        y_true = rng.integers(0, seen, 500)
        y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, seen, 500))
        theirs = ref.accuracy(y_pred, y_true, seen - 10)
        acc, old, new = task_accuracy(np.array(order)[y_pred], np.array(order)[y_true], tasks, seen)
        assert list(np.around(acc[: seen // 10] * 100, 2)) == ref.cnn_matrix_row(theirs)
        assert np.around(new * 100, 2) == theirs["new"]
        assert (np.isnan(old) if seen == 10 else np.around(old * 100, 2) == theirs["old"])
    for t in range(1, 6):
        matrix = [list(np.around(rng.random(i + 1) * 100, 2)) for i in range(t + 1)]
        theirs, table = ref.trainer_forgetting(matrix, t)
        ours = np.full((t + 1, t + 1), np.nan)
        for i, line in enumerate(matrix):
            ours[i, : len(line)] = line
        assert mean_forgetting(ours, t + 1) == theirs
        assert np.array_equal(forgetting(ours)[-1, :t], (table.max(1) - table[:, t])[:t])


def test_wa_gamma_is_weight_aligns() -> None:
    generator = torch.Generator().manual_seed(0)
    for rows, new in ((20, 10), (7, 3), (100, 10)):
        weight = torch.randn(rows, 16, generator=generator) * torch.rand(rows, 1, generator=generator)
        net = ref.IncrementalNet(16)
        net.fc = pycil.SimpleLinear(16, rows)
        net.fc.weight.data = weight.clone()
        assert wa_gamma(weight, new) == float(net.weight_align(new))
    assert np.isnan(wa_gamma(weight, 0)) and np.isnan(wa_gamma(weight, len(weight)))


# ---------------------------------------------------------------- a task checkpoint alone
def test_a_task_checkpoint_opens_in_the_datas_classes(run) -> None:
    """Its 4 classes are the data classes order[:4]: their logits are PyCIL's to the bit,
    the other 8 are absent (finite, below every present one, probability 0), the entropy
    is finite; adaptation is refused in one line."""
    from protoview.core.adapt.registry import make_adapter
    from protoview.core.opening import open_model_and_data
    from protoview.core.state import prediction_statistics

    kind, data, _labels, paths, convnet, heads, _tl = run
    model, dataset = open_model_and_data(str(paths[0]), data, arch="pycil:resnet32",
                                         nb_proxy=PROXIES[kind] if kind == "split" else None)
    assert model.info.head.num_classes == CLASSES and model.info.head.held == 4
    assert "a task checkpoint: its head holds 4 of the data's 12 classes" in " ".join(model.info.notes)
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        ours, theirs = model.eval()(x), pycil.incremental_logits(convnet, heads[0], x)
    assert torch.equal(ours[:, ORDER[:4]], theirs)
    absent = ours[:, ORDER[4:]]
    assert torch.isfinite(absent).all() and (absent.max(1).values < theirs.min(1).values).all()
    assert torch.softmax(ours, 1)[:, ORDER[4:]].eq(0).all()
    _pred, confidence, entropy = prediction_statistics(ours.numpy(), len(ours))
    assert np.isfinite(entropy).all() and np.isfinite(confidence).all()
    with pytest.raises(ParameterError, match="holds 4 of the data's 12 classes"):
        make_adapter("tent", model)
    make_adapter("none", model)  # adapts nothing: allowed


# ---------------------------------------------------------------- the command and the snapshot
def test_the_command_prints_and_writes_the_tasks(linear, tmp_path, capsys) -> None:
    """The tables and the CSV; the snapshot's task fields read back (written from the
    timeline without maps: the command's --out draws them, the same fields)."""
    from protoview.core.snapshot import read_snapshot, write_snapshot
    from protoview.core.timeline import timeline_to_snapshot

    data, paths = linear
    out, csv = tmp_path / "t.h5", tmp_path / "t.csv"
    argv = ["timeline", *map(str, paths), data, "--arch", "pycil:resnet32", "--no-cache"]
    assert main([*argv, "--csv", str(csv), "--tasks", "4,4,4"]) == 0
    text = capsys.readouterr().out
    for words in ("tasks: 4, 4, 4 classes (from --tasks", "accuracy per task",
                  "forgetting per task", "average incremental accuracy", "WA's gamma",
                  "task 3 (8-11)"):
        assert words in text
    tl = build_timeline([str(p) for p in paths], data, OPTIONS, with_map=False,
                        tasks="4,4,4")
    header, *rows = csv.read_text().splitlines()
    assert header.split(",")[7:10] == ["old_accuracy", "new_accuracy", "wa_gamma"]
    assert len(rows) == 3 and float(rows[2].split(",")[4]) == tl.steps[2].accuracy
    write_snapshot(out, timeline_to_snapshot(tl))
    snap = read_snapshot(out)
    got = snapshot_tasks(snap)
    assert got["sizes"] == list(SIZES) and got["order"] == ORDER
    np.testing.assert_array_equal(got["task_of_class"], tl.tasks.task_of_data_class())
    assert list(got["task_of_class"][ORDER]) == [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_array_equal(got["accuracy"], tl.task_matrix())
    np.testing.assert_array_equal(got["forgetting"], tl.forgetting_matrix())
    np.testing.assert_array_equal(got["wa_gamma"], [s.tasks.wa_gamma for s in tl.steps])
    assert got["forgetting_mean"] == tl.mean_forgetting()
    assert got["average_incremental_accuracy"] == tl.average_incremental_accuracy()
    assert json.loads(snap.attrs["class_order"]) == ORDER


def test_a_timeline_without_tasks_has_no_task_fields(epochs) -> None:
    """Checkpoints whose head does not grow: no tasks, the snapshot as before."""
    from protoview.core.timeline import timeline_to_snapshot

    tl = build_timeline([str(p) for p in epochs], "demo", OpenOptions(arch=tf.ARCH),
                        with_map=False)
    assert tl.tasks is None and tl.task_matrix().shape == (2, 0)
    snap = timeline_to_snapshot(tl)
    assert snapshot_tasks(snap) is None and "task_accuracy" not in snap.history


@pytest.mark.parametrize(("tasks", "words"), [
    ("4,4", "4,4 adds up to 8 classes, but the largest head holds 12"),
    ("4,8", "wa_1.pkl's head holds 8 classes, which is not the end of a task of 4,8"),
    ("4,x,4", "takes the classes of each task separated by commas"),
    ("4,0,8", "every task holds at least one class"),
])
def test_task_sizes_that_do_not_fit_are_one_line(linear, capsys, tasks, words) -> None:
    data, paths = linear
    argv = ["timeline", *map(str, paths), data, "--arch", "pycil:resnet32", "--tasks", tasks]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tasks" in err[0] and words in err[0], err


def test_task_sizes_without_a_head_that_grows_are_refused(epochs, capsys) -> None:
    argv = ["timeline", *map(str, epochs), "demo", "--arch", tf.ARCH, "--tasks", "5,5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tasks" in err[0] and "every checkpoint's head holds 10" in err[0]


def test_tasks_for_reads_the_heads() -> None:
    order = tuple(range(10))
    assert tasks_for(None, [4, 4, 7, 10], list("abcd"), order).sizes == (4, 3, 3)
    assert tasks_for(None, [10, 10], list("ab"), order) is None
    assert tasks_for("2,2,3,3", [4, 7, 10], list("abc"), order).sizes == (2, 2, 3, 3)
