"""Every number and text the window derives from what it shows, computed once, here.

Colour codes, which class a prototype's group matches, a glyph's members, per-class
accuracy and confusion, the hover / selection / neighbour texts, the map's freshness, the
numbers line and the export caption. Each calls the core's science (``core.metrics``,
``core.geometry``, ``core.runs``, ``core.state``), never a copy of it; Qt-free.
"""

from __future__ import annotations

import numpy as np

from protoview.core.runs import VERSUS_NAMES, versus_codes
from protoview.core.timeline import TIMELINE_METHOD

#: How samples can be coloured.
COLOR_MODES = ("label", "prediction", "assignment", "correctness", "entropy", "fixed/broken",
               "task")
#: The colour mode comparing each sample's verdict with another run's.
VERSUS_MODE = "fixed/broken"
#: The colour mode of a class-incremental timeline: each sample by its class's task (old /
#: new at the checkpoint shown; classes its head does not hold yet greyed).
TASK_MODE = "task"
#: Colour modes that need known labels (unlabelled data falls back to prediction).
LABEL_COLOUR_MODES = ("label", "correctness", VERSUS_MODE)
ENTROPY_BINS = 16

__all__ = [
    "COLOR_MODES", "ENTROPY_BINS", "LABEL_COLOUR_MODES", "TASK_MODE", "VERSUS_MODE", "VERSUS_NAMES",
    "available_colour_modes", "caption_text", "checkpoint_label", "class_name", "entropy_codes",
    "glyph_hover_text", "group_classes", "hover_text", "map_freshness", "members",
    "neighbour_texts", "num_classes", "numbers_line", "owner_class", "per_class_and_confusion",
    "prototype_groups", "request_text", "run_title", "sample_codes", "scores_text", "selection_summary",
    "task_codes", "task_legend", "task_layout", "versus_codes",
]


# ---------------------------------------------------------------- classes and colours
def num_classes(state) -> int:
    """Classes the state knows of: labels, predictions, centers, proxies (0 for None)."""
    if state is None:
        return 0
    best = 0
    for arr in (state.labels, state.predictions, state.center_labels, state.proxy_classes):
        arr = np.asarray(arr)
        if arr.size:
            best = max(best, int(arr.max()) + 1)
    return best


def class_name(names: list[str], c: int) -> str:
    """A class's name: ``names[c]``, its number when unnamed, ``?`` when unknown (-1)."""
    return names[c] if 0 <= c < len(names) else ("?" if c < 0 else str(c))


def available_colour_modes(state) -> tuple[str, ...]:
    """Colour modes that mean something for ``state`` (label and correctness need labels:
    unlabelled data offers prediction, assignment and entropy; task only for a map of a
    class-incremental timeline)."""
    modes = COLOR_MODES if task_layout(state) is not None else tuple(
        m for m in COLOR_MODES if m != TASK_MODE)
    if state is None or np.any(np.asarray(state.labels) >= 0):
        return modes
    return tuple(m for m in modes if m not in LABEL_COLOUR_MODES)


def task_layout(state):
    """The tasks of a map of a class-incremental timeline: ``(task_of_class (C,) int64,
    tasks, seen)``, each data class's task (0-based, -1 none), the run's tasks and how many
    of them the head of the checkpoint shown holds (its classes: those whose proxies are
    on this frame's map; a frame pads the others with NaN); None for any other map."""
    import json

    from protoview.core.timeline import Tasks

    attrs = getattr(state, "attrs", None) or {}
    if attrs.get("method") != TIMELINE_METHOD or "tasks" not in attrs:
        return None
    try:
        sizes = tuple(int(v) for v in json.loads(str(attrs["tasks"])))
        order = tuple(int(v) for v in json.loads(str(attrs.get("class_order", "[]"))))
    except (TypeError, ValueError):
        return None
    if not sizes or sum(sizes) != len(order):
        return None
    tasks = Tasks(sizes, order, "")
    placed = np.isfinite(np.asarray(state.proxies_embedding, np.float64).reshape(-1, 2)).all(1)
    classes = np.asarray(state.proxy_classes, np.int64)
    head = len(np.unique(classes[placed[:len(classes)]])) if len(classes) else len(order)
    return tasks.task_of_data_class(), tasks.count, max(tasks.seen(head), 0)


def task_codes(state) -> np.ndarray:
    """(N,) each sample's task colour code: its class's task (the label's; the prediction's
    when unlabelled) when the head shown holds it, else -1 (not yet learnt, or unknown)."""
    n = len(state.embedding)
    layout = task_layout(state)
    if layout is None:
        return np.full(n, -1, np.int64)
    task_of_class, _tasks, seen = layout
    cls = np.asarray(state.labels, np.int64)
    cls = np.where(cls < 0, np.asarray(state.predictions, np.int64), cls)
    ok = (cls >= 0) & (cls < len(task_of_class))
    codes = np.full(n, -1, np.int64)
    codes[ok] = task_of_class[cls[ok]]
    codes[codes >= seen] = -1
    return codes


def unlearnt_classes(state, n_classes: int) -> np.ndarray:
    """(n_classes,) bool: the classes the head shown does not hold yet (a task checkpoint
    of a class-incremental timeline); all False for any other map. Their accuracy is not
    0%: they are "not yet learnt"."""
    out = np.zeros(max(int(n_classes), 0), bool)
    layout = task_layout(state) if state is not None else None
    if layout is None:
        return out
    task_of_class, _tasks, seen = layout
    m = min(len(out), len(task_of_class))
    out[:m] = np.asarray(task_of_class[:m]) >= seen
    return out


NOT_LEARNT = "not yet learnt"


def task_legend(state) -> list[tuple[int, str]]:
    """The task mode's legend: ``(code, text)``: ``task 1 (old)`` ... ``task k (new)`` for
    the tasks the head shown holds, then ``(-1, "not yet learnt")`` while tasks remain."""
    layout = task_layout(state)
    if layout is None:
        return []
    _of, tasks, seen = layout
    out = [(j, f"task {j + 1} ({'new' if j == seen - 1 else 'old'})") for j in range(seen)]
    if seen < tasks:
        out.append((-1, "not yet learnt"))
    return out


def entropy_codes(entropy: np.ndarray, n_classes: int, bins: int = ENTROPY_BINS) -> np.ndarray:
    """Bin entropies (N,) into ``bins`` codes on [0, log C]; NaN -> -1."""
    entropy = np.asarray(entropy, dtype=np.float64)
    top = np.log(max(n_classes, 2))
    with np.errstate(invalid="ignore"):
        codes = np.floor(np.clip(entropy / top, 0, 1) * (bins - 1e-9)).astype(np.int64)
    codes[~np.isfinite(entropy)] = -1
    return codes


def sample_codes(state, mode: str, versus: np.ndarray | None = None) -> np.ndarray:
    """The colour code (N,) of each sample in ``mode`` (-1 unknown); ``versus``: the other
    run's predictions (N,) for the fixed / broken mode."""
    n = len(state.embedding)
    if mode == "label":
        return np.asarray(state.labels, np.int64)
    if mode == "prediction":
        return np.asarray(state.predictions, np.int64)
    if mode == "assignment":
        a = state.assignment
        return np.full(n, -1, np.int64) if a is None else np.asarray(a, np.int64)
    if mode == "correctness":
        lab, pred = np.asarray(state.labels), np.asarray(state.predictions)
        codes = (lab == pred).astype(np.int64)
        codes[(lab < 0) | (pred < 0)] = -1
        return codes
    if mode == VERSUS_MODE:
        return versus_codes(state.predictions, versus, state.labels)
    if mode == "entropy":
        return entropy_codes(state.entropy, num_classes(state))
    if mode == TASK_MODE:
        return task_codes(state)
    raise ValueError(f"unknown colour mode {mode!r}; choose one of {COLOR_MODES}")


# ---------------------------------------------------------------- groups and members
def _has_features(state) -> bool:
    feats = np.asarray(state.features)
    return feats.ndim == 2 and feats.shape[1] > 0 and len(feats) == len(state.labels)


def prototype_groups(state) -> np.ndarray | None:
    """(N,) the prototype each sample belongs to: the assignment when it is to the
    prototypes (k-means, or Sinkhorn to them), else the nearest prototype in feature space
    (as k-means assigns); None without prototypes (or without features to tell)."""
    from protoview.core.geometry import nearest_l2

    if state.assignment_target == "prototypes" and state.assignment is not None:
        return np.asarray(state.assignment, np.int64)
    k = len(state.prototypes_embedding)
    if k and _has_features(state) and np.shape(state.prototypes) == (k, state.features.shape[1]):
        return nearest_l2(state.features, state.prototypes)
    return None


def group_classes(state, n_classes: int) -> np.ndarray:
    """(G,) the class each prototype group matches one to one (Hungarian, -1: none)."""
    from protoview.core.metrics import match_groups_to_classes

    groups = prototype_groups(state)
    k = len(state.prototypes_embedding)
    n_groups = k if groups is None or groups.size == 0 else max(k, int(groups.max()) + 1)
    if groups is None:
        return np.full(n_groups, -1, np.int64)
    return match_groups_to_classes(groups, state.labels, n_groups, max(n_classes, 1))


def owner_class(state, kind: str, index: int) -> int:
    """The class of a center or proxy; a prototype's own index."""
    if kind == "centers":
        return int(state.center_labels[index])
    if kind == "proxies":
        return int(state.proxy_classes[index])
    return int(index)


def members(state, kind: str, index: int) -> np.ndarray:
    """(N,) bool: the samples of a class center (its label), a proxy (nearest proxy by
    cosine, or the prediction without features) or a prototype (nearest in squared L2, as
    k-means assigns; the assignment without features)."""
    from protoview.core.geometry import nearest, nearest_l2

    if kind == "centers":
        return np.asarray(state.labels) == state.center_labels[index]
    if kind == "proxies":
        if _has_features(state) and len(state.proxies):
            return nearest(state.features, state.proxies)[0] == index
        return np.asarray(state.predictions) == state.proxy_classes[index]
    if kind == "prototypes":
        if _has_features(state) and len(state.prototypes) and \
                state.prototypes.shape[1] == state.features.shape[1]:
            return nearest_l2(state.features, state.prototypes) == index
        a = state.assignment
        return np.zeros(len(state.labels), bool) if a is None else np.asarray(a) == index
    raise ValueError(f"unknown kind {kind!r}")


# ---------------------------------------------------------------- accuracy per class
def per_class_and_confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int):
    """Per-class accuracy (C,) float64 (NaN for empty classes) and confusion (C, C) int64
    (rows = true label, columns = prediction), over the samples whose label is known and
    below ``n_classes``. A prediction of -1 (a head class that is none of the data's, as
    ImageNet-D's map has) is wrong, as the overall accuracy counts it, and has no column in
    the confusion; when no sample has a prediction (an encoder without a head) nothing is
    scored."""
    from protoview.core.metrics import confusion_matrix, per_class_accuracy

    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    scored = (labels >= 0) & (labels < n_classes) & (predictions < n_classes)
    ok = scored & (predictions >= 0)
    if n_classes < 1:
        return np.zeros(0), np.zeros((0, 0), np.int64)
    if not ok.any():  # nothing to score (unlabelled data): no class has an accuracy
        return np.full(n_classes, np.nan), np.zeros((n_classes, n_classes), np.int64)
    per_class = per_class_accuracy(predictions[scored], labels[scored], n_classes)
    return per_class.astype(np.float64), confusion_matrix(predictions[ok], labels[ok], n_classes)


# ---------------------------------------------------------------- texts
def hover_text(state, i: int, names: list[str]) -> str:
    lab, pred = int(state.labels[i]), int(state.predictions[i])
    conf = float(state.confidence[i])
    mark = "" if lab < 0 or pred < 0 else (" ✓" if lab == pred else " ✗")
    conf_s = f"{conf:.0%}" if np.isfinite(conf) else "n/a"
    return (f"<b>#{i}</b><br>label {class_name(names, lab)}<br>"
            f"prediction {class_name(names, pred)}{mark}<br>confidence {conf_s}")


def glyph_hover_text(state, kind: str, index: int, mask: np.ndarray, names: list[str]) -> str:
    """What the card says over a class center, a proxy or a prototype (rich text);
    ``mask``: its :func:`members`."""
    n = int(mask.sum())
    lab, pred = np.asarray(state.labels)[mask], np.asarray(state.predictions)[mask]
    known = (lab >= 0) & (pred >= 0)
    acc = f"accuracy {np.mean(lab[known] == pred[known]):.0%}" if known.any() else "accuracy n/a"
    if kind == "centers":
        c = int(state.center_labels[index])
        if c >= 0 and unlearnt_classes(state, c + 1)[c]:
            acc = f"accuracy n/a ({NOT_LEARNT}: the head shown lacks the class)"
        n_proxies = int((np.asarray(state.proxy_classes) == c).sum())
        return (f"<b>class center {class_name(names, c)}</b><br>{n} samples · {acc}"
                f"<br>{n_proxies} {'proxy' if n_proxies == 1 else 'proxies'}")
    if kind == "proxies":
        c = int(state.proxy_classes[index])
        return (f"<b>proxy {index}</b> of class {class_name(names, c)}<br>"
                f"nearest proxy of {n} samples · {acc}")
    d = float(state.prototype_density[index]) if index < len(state.prototype_density) else np.nan
    text = f"<b>prototype P{index}</b><br>{n} members"
    if np.isfinite(d):
        text += f" · density {d:.3g}"
    ok = lab[lab >= 0]
    if ok.size:
        values, counts = np.unique(ok, return_counts=True)
        top = int(np.argmax(counts))
        text += f"<br>mostly {class_name(names, int(values[top]))} ({counts[top] / ok.size:.0%})"
    return text


def selection_summary(state, sel: np.ndarray, names: list[str]) -> str:
    if state is None or np.size(sel) == 0:
        return "No selection (right-drag a box on the map)."
    lab, pred = np.asarray(state.labels)[sel], np.asarray(state.predictions)[sel]
    known = (lab >= 0) & (pred >= 0)
    acc = (f"accuracy {np.mean(lab[known] == pred[known]):.1%}" if known.any()
           else "accuracy n/a" if (lab >= 0).any() else "no labels")
    shown, what = (lab, "classes") if (lab >= 0).any() else (pred, "predicted")
    values, counts = np.unique(shown, return_counts=True)
    order = np.argsort(-counts)[:4]
    mix = ", ".join(f"{class_name(names, int(values[j]))}: {counts[j] / len(sel):.0%}"
                    for j in order)
    more = " …" if len(values) > 4 else ""
    return f"{len(sel)} selected · {acc} · {what} {mix}{more}"


def neighbour_texts(state, index: int, neighbours, ranks: np.ndarray,
                    names: list[str]) -> tuple[str, list[str]]:
    """The Neighbours panel's header (rich text) and one line per neighbour of sample
    ``index`` (``neighbours``: a :class:`~protoview.core.neighbors.Neighbors`; ``ranks``:
    their ranks on the map)."""
    k = neighbours.indices.size
    kept = int((ranks <= k).sum())
    lab, pred = int(state.labels[index]), int(state.predictions[index])
    header = (f"<b>#{index}</b> (label {class_name(names, lab)}, prediction "
              f"{class_name(names, pred)}): its {k} nearest in feature space "
              f"({neighbours.metric}). <b>{kept} of {k}</b> are also among its {k} nearest on "
              "the map; a high map rank means the projection tore that neighbour away.")
    lines = []
    for j, (i, d, r) in enumerate(zip(neighbours.indices.tolist(),
                                      neighbours.distances.tolist(), ranks.tolist(), strict=True)):
        li, pi = int(state.labels[i]), int(state.predictions[i])
        mark = "" if li < 0 or pi < 0 else (" ✓" if li == pi else " ✗")
        lines.append(f"{j + 1}. #{i} · label {class_name(names, li)} · pred "
                     f"{class_name(names, pi)}{mark}\n    distance {d:.3f} · map rank {r}")
    return header, lines


def map_freshness(state) -> str:
    """What the map shows, for its label: ``"map of step 12 — 40% refreshed"`` while the
    samples are being refreshed to the current model, ``"map of step 12 — exact"`` once
    all are; the quick preview says so; ``""`` without an adaptation run."""
    metrics = getattr(state, "metrics", None) or {}
    if metrics.get("map_preview"):
        return "quick preview (PCA) — the UMAP map follows"
    checkpoint = checkpoint_label(state)
    if checkpoint:  # a timeline's map is aligned from the one before, never partial
        return f"map of {checkpoint}"
    if "map_step" not in metrics:
        return ""
    step = int(metrics["map_step"])
    refreshed = float(metrics.get("refreshed", 1.0))
    if refreshed >= 1.0:
        return f"map of step {step} — exact"
    return f"map of step {step} — {int(refreshed * 100)}% refreshed"


def progress_unit(state) -> str:
    """What the accuracy chart's x axis counts for ``state``: ``"checkpoint"`` for a
    timeline of checkpoints, ``"step"`` otherwise."""
    attrs = getattr(state, "attrs", None) or {}
    return "checkpoint" if attrs.get("method") == TIMELINE_METHOD else "step"


def checkpoint_label(state) -> str:
    """The checkpoint a map of a timeline of checkpoints shows: ``"epoch_3.pt (3 of 5)"``
    (its file's name, its place in the timeline); ``""`` for any other map."""
    import json
    import os

    attrs = getattr(state, "attrs", None) or {}
    if attrs.get("method") != TIMELINE_METHOD:
        return ""
    step = int(attrs.get("step", 0) or 0)
    name = os.path.basename(str(attrs.get("checkpoint", "") or "")) or f"checkpoint {step}"
    try:
        total = len(json.loads(str(attrs.get("timeline_checkpoints", "[]"))))
    except (TypeError, ValueError):
        total = 0
    return f"{name} ({step} of {total})" if total else name


def scores_text(metrics: dict, source_accuracy: float, labelled: bool = True) -> str:
    """One line of the headline numbers (missing ones are left out; for unlabelled data the
    accuracy-type ones read "no labels", never 0% or NaN)."""
    parts = [] if labelled else ["accuracy: no labels"]

    def add(label: str, key: str, fmt: str) -> None:
        v = metrics.get(key)
        if v is not None and np.isfinite(v):
            parts.append(f"{label} {format(v, fmt)}")

    add("accuracy", "accuracy", ".1%")
    probe = metrics.get("probe_accuracy")
    if probe is not None and np.isfinite(probe) and "accuracy" not in metrics:
        size = int(metrics.get("probe_size", 0))
        population = int(metrics.get("probe_population", 0))
        parts.append(f"probe accuracy {probe:.1%} (95% CI {metrics.get('probe_low', probe):.1%}"
                     f"–{metrics.get('probe_high', probe):.1%}; {size:,} of {population:,})")
    if np.isfinite(source_accuracy):
        parts.append(f"unadapted {source_accuracy:.1%}")
    add("center loss", "center_loss", ".3g")
    add("NMI", "nmi", ".3f")
    add("ARI", "ari", ".3f")
    return " · ".join(parts) if parts else "no numbers yet"


def run_title(state) -> str:
    """What the map shows, for a talk's banner: ``tsd corrected · continual stream · step
    12 · accuracy 80.7%`` (the stream always named; ``source model · step 0 · ...`` without
    a run; "accuracy ≈" for the probe's estimate; the unadapted model's is on the chart;
    a timeline's map: ``epoch_3.pt (3 of 5) · accuracy 80.7%``)."""
    if state is None:
        return ""
    attrs = state.attrs or {}
    method = str(attrs.get("method", "") or "none")
    params = attrs.get("params") if isinstance(attrs.get("params"), dict) else {}
    checkpoint = checkpoint_label(state)
    if checkpoint:
        acc = state.metrics.get("accuracy")
        return " · ".join([checkpoint,
                           *([f"accuracy {acc:.1%}"] if acc is not None and np.isfinite(acc)
                             else [])])
    parts = ["source model"] if method == "none" else [
        " ".join([method, *([str(params["variant"])] if params.get("variant") else [])]),
        f"{params.get('stream') or 'online'} stream"]
    parts.append(f"step {int(attrs.get('step', 0) or 0)}")
    acc = state.metrics.get("accuracy")
    if acc is None or not np.isfinite(acc):
        acc = state.metrics.get("probe_accuracy")
        label = "accuracy ≈"
    else:
        label = "accuracy"
    if acc is not None and np.isfinite(acc):
        parts.append(f"{label} {acc:.1%}")
    return " · ".join(parts)


def numbers_line(state, source_accuracy: float) -> str:
    """The numbers line of ``state`` (:func:`scores_text`; unlabelled data adds the mean
    prediction entropy)."""
    if state is None:
        return "no numbers yet"
    labelled = bool(np.any(np.asarray(state.labels) >= 0))
    text = scores_text(state.metrics, source_accuracy, labelled=labelled)
    entropy = np.asarray(state.entropy)
    if not labelled and entropy.size and np.isfinite(entropy).any():
        text += f" · mean entropy {float(np.nanmean(entropy)):.3f}"
    return text


def caption_text(state, source_accuracy: float = float("nan")) -> str:
    """``tsd (reference) · step 9 · accuracy 80.7% (unadapted 55.3%)`` for ``state`` (the
    stream after the method when it is not online: ``tent · continual · step 26 ...``);
    a timeline's map: ``epoch_3.pt (3 of 5) · accuracy 80.7%``."""
    if state is None:
        return ""
    checkpoint = checkpoint_label(state)
    if checkpoint:  # a timeline of checkpoints: which one, no unadapted model
        return run_title(state)
    attrs = state.attrs or {}
    method = str(attrs.get("method", "") or "none")
    params = attrs.get("params") or {}
    variant = params.get("variant") if isinstance(params, dict) else None
    head = "source model" if method == "none" else method + (f" ({variant})" if variant else "")
    stream = params.get("stream") if isinstance(params, dict) else None
    parts = [head, *([str(stream)] if stream and stream != "online" else []),
             f"step {int(attrs.get('step', 0) or 0)}"]
    acc = state.metrics.get("accuracy")
    if acc is not None and np.isfinite(acc):
        text = f"accuracy {acc:.1%}"
        if np.isfinite(source_accuracy) and method != "none":
            text += f" (unadapted {source_accuracy:.1%})"
        parts.append(text)
    return " · ".join(parts)


def request_text(request) -> str:
    """What a request is doing, for the status bar while it runs ("tsd: 10 steps…")."""
    from protoview.core import requests as r

    if isinstance(request, r.OpenRequest):
        return f"opening {request.checkpoint} with {request.data}…"
    if isinstance(request, r.StepRequest):
        steps = ("the rest of the pass" if request.n_steps <= 0
                 else f"{request.n_steps} step{'s' if request.n_steps != 1 else ''}")
        return f"{request.method}: {steps}…"
    texts = {r.RefreshRequest: "refreshing the map to the current model…",
             r.ResetRequest: "back to the source model and its map…",
             r.ForgetRunsRequest: "forgetting the earlier runs…"}
    if type(request) in texts:
        return texts[type(request)]
    if isinstance(request, r.KMeansRequest):
        return f"k-means with k = {request.k}…"
    if isinstance(request, r.SinkhornRequest):
        return f"Sinkhorn to the {request.target}…"
    if isinstance(request, r.GeometryRequest):
        return "measuring the geometry of the feature space…"
    return "working…"

