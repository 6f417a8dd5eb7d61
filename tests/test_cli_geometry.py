"""``protoview geometry`` on the built-in demo: the table, the CSV rows (equal to the Python
API's numbers), CKA against another checkpoint, unlabelled data ("no labels"), the error
groups' ranking, and the one-line refusals."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from protoview.cli import main
from protoview.core.metrics import error_groups


def _csv(path) -> dict[tuple[str, str, str], str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["section", "item", "metric", "value"]
    return {(s, i, m): v for s, i, m, v in rows[1:]}


def test_geometry_prints_the_table_and_writes_the_api_numbers(capsys, tmp_path):
    out_csv = tmp_path / "g.csv"
    assert main(["geometry", "demo", "demo:noise:3", "--csv", str(out_csv), "--versus",
                 "demo:linear", "--rbf-samples", "200", "--clusters", "3"]) == 0
    out = capsys.readouterr().out
    for words in ("NC1", "NC2", "NC3", "NC4", "proxy-to-center cosine", "weighted k-NN (20-NN, T 0.07)",
                  "nearest class center", "NMI", "clusters with the most errors",
                  "versus demo:linear: linear CKA", "on 200 of 539 samples"):
        assert words in out, words
    rows = _csv(out_csv)
    assert rows[("summary", "", "samples")] == "539" and rows[("summary", "", "classes_by")] == "labels"
    assert sum(1 for key in rows if key[0] == "cluster" and key[2] == "error_rate") == 10

    from protoview.core.features import extract_features
    from protoview.core.heads import head_proxies
    from protoview.core.measures import measure_geometry
    from protoview.core.opening import open_model_and_data

    model, dataset = open_model_and_data("demo", "demo:noise:3")
    result = extract_features(model, dataset)
    report = measure_geometry(result.features, result.logits, result.labels,
                              head_rows=head_proxies(model.classifier)[0].numpy(),
                              nb_proxy=model.info.head.nb_proxy, cosine_head=True)
    for key, value in report.summary().items():
        assert float(rows[("summary", "", key)]) == pytest.approx(value, rel=1e-6), key
    assert model.info.head.nb_proxy == 3  # the demo's cosine head: reduced proxies in NC3


def test_geometry_without_labels_says_no_labels(capsys, tmp_path):
    from protoview.core.demo import demo_arrays

    images, _ = demo_arrays(part="test", shift="noise", severity=3)
    npz = tmp_path / "target.npz"
    np.savez(npz, x=images[:200])
    out_csv = tmp_path / "u.csv"
    assert main(["geometry", "demo", str(npz), "--no-cache", "--csv", str(out_csv), "--versus",
                 "demo:linear"]) == 0
    out = capsys.readouterr().out
    assert "grouped by predicted classes (no labels)" in out
    assert "accuracy: head no labels | weighted k-NN (20-NN, T 0.07) no labels | nearest class " \
           "center no labels" in out
    assert "NMI no labels, ARI no labels" in out and "clusters with the most errors: no labels" in out
    assert "NC4" in out and "linear CKA" in out and "NC1  Tr(Sigma_W Sigma_B^+) / C" in out
    rows = _csv(out_csv)
    assert rows[("summary", "", "head_accuracy")] == "" and rows[("summary", "", "knn_accuracy")] == ""
    assert rows[("summary", "", "classes_by")] == "predictions"
    assert float(rows[("summary", "", "nc4_ncc_agreement")]) >= 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--knn-k", "0"], "--knn-k: must be at least 1"),
    (["--knn-temperature", "0"], "--knn-temperature: must be > 0"),
    (["--rbf-samples", "2"], "--rbf-samples: must be 0 (all) or at least 4"),
    (["--versus-data", "demo:blur:3"], "--versus-data: needs --versus CKPT2"),
    (["--versus", "demo:linear", "--versus-data", "demo:blur:3"], "--versus-data: is not the same data"),
    (["--csv", "/no/such/folder/g.csv"], "the folder to write into does not exist"),
])
def test_bad_options_are_one_line_exit_2(capsys, argv, message):
    assert main(["geometry", "demo", "demo:noise:3", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("protoview: error: ") and message in err and "\n" not in err


def test_error_groups_rank_by_error_rate_with_their_class_mix():
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = np.array([0, 0, 1, 2, 2, 1, 1, 1, 0, -1])
    preds = np.array([0, 1, 1, 0, 0, 1, 1, 0, 0, 0])
    rows = error_groups(groups, preds, labels)
    assert [r.group for r in rows] == [1, 0, 2, 3]  # 100%, 33% (1 of 3), 25%, unlabelled last
    assert rows[0].error_rate == 1.0 and rows[0].class_mix == [(2, 2)]
    assert rows[1].errors == 1 and rows[1].class_mix == [(0, 2), (1, 1)]
    assert rows[2].class_mix == [(1, 3), (0, 1)] and rows[2].members.tolist() == [5, 6, 7, 8]
    assert rows[3].labelled == 0 and np.isnan(rows[3].error_rate)
    with pytest.raises(Exception, match="groups"):
        error_groups(groups[:-1], preds, labels)


def test_an_encoder_without_a_head_is_measured(tmp_path, capsys) -> None:
    """A SwAV checkpoint (no classifier): the labels' geometry, k-NN and nearest-center
    accuracy; NC3 / NC4 / the head's accuracy n/a; unlabelled, the k-means groups' geometry."""
    import numpy as np

    from protoview.core.measures import measure_geometry
    from tests._ssl_fixtures import swav_model, write_swav

    path = write_swav(tmp_path / "swav.pth.tar", swav_model())
    argv = ["geometry", str(path), "demo:noise:3", "--arch", "resnet18", "--preprocess",
            "size=32,channels=3,mean=0.5,std=0.25", "--no-cache"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "grouped by labels" in out and "NC4  nearest class mean agrees with the head        n/a" in out
    assert "accuracy: head n/a (no head) | weighted k-NN" in out and "%" in out.split("k-NN")[1]
    assert "no predictions to be wrong" in out
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c * 5, 1, (20, 4)) for c in range(3)]).astype(np.float32)
    report = measure_geometry(x, np.zeros((60, 0), np.float32), np.full(60, -1), kmeans_k=3)
    assert report.classes_by == "k-means groups" and report.head_accuracy is None
    assert report.collapse.nc1 is not None and report.collapse.nc4 is None
