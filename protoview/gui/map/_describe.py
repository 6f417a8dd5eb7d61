"""What the map says in words (private to :mod:`protoview.gui.map`): the hover card of a
sample or of a glyph, the selection's summary, and the selection written to a file."""

from __future__ import annotations

import numpy as np


def class_label(names: list[str], c: int) -> str:
    """The name of class ``c`` (``?`` when unknown, the number when unnamed)."""
    return names[c] if 0 <= c < len(names) else ("?" if c < 0 else str(c))


def hover_text(state, i: int, names: list[str]) -> str:
    lab, pred = int(state.labels[i]), int(state.predictions[i])
    conf = float(state.confidence[i])
    mark = "" if lab < 0 or pred < 0 else (" ✓" if lab == pred else " ✗")
    conf_s = f"{conf:.0%}" if np.isfinite(conf) else "n/a"
    return (f"<b>#{i}</b><br>label {class_label(names, lab)}<br>"
            f"prediction {class_label(names, pred)}{mark}<br>confidence {conf_s}")


def glyph_hover_text(view, kind: str, index: int, members: np.ndarray) -> str:
    """What the card says over a class center, a proxy or a prototype (rich text)."""
    state = view.state
    n = int(members.sum())
    lab, pred = np.asarray(state.labels)[members], np.asarray(state.predictions)[members]
    known = (lab >= 0) & (pred >= 0)
    acc = f"accuracy {np.mean(lab[known] == pred[known]):.0%}" if known.any() else "accuracy n/a"
    if kind == "centers":
        c = int(state.center_labels[index])
        n_proxies = int((np.asarray(state.proxy_classes) == c).sum())
        return (f"<b>class center {view.class_name(c)}</b><br>{n} samples · {acc}"
                f"<br>{n_proxies} {'proxy' if n_proxies == 1 else 'proxies'}")
    if kind == "proxies":
        c = int(state.proxy_classes[index])
        return (f"<b>proxy {index}</b> of class {view.class_name(c)}<br>"
                f"nearest proxy of {n} samples · {acc}")
    d = float(state.prototype_density[index]) if index < len(state.prototype_density) else np.nan
    text = f"<b>prototype P{index}</b><br>{n} members"
    if np.isfinite(d):
        text += f" · density {d:.3g}"
    ok = lab[lab >= 0]
    if ok.size:
        values, counts = np.unique(ok, return_counts=True)
        top = int(np.argmax(counts))
        text += f"<br>mostly {view.class_name(int(values[top]))} ({counts[top] / ok.size:.0%})"
    return text


def selection_summary(state, sel: np.ndarray, names: list[str]) -> str:
    if state is None or sel.size == 0:
        return "No selection (right-drag a box on the map)."
    lab, pred = np.asarray(state.labels)[sel], np.asarray(state.predictions)[sel]
    known = (lab >= 0) & (pred >= 0)
    acc = (f"accuracy {np.mean(lab[known] == pred[known]):.1%}" if known.any()
           else "accuracy n/a" if (lab >= 0).any() else "no labels")
    shown, what = (lab, "classes") if (lab >= 0).any() else (pred, "predicted")
    values, counts = np.unique(shown, return_counts=True)
    order = np.argsort(-counts)[:4]
    mix = ", ".join(f"{class_label(names, int(values[j]))}: {counts[j] / sel.size:.0%}"
                    for j in order)
    more = " …" if len(values) > 4 else ""
    return f"{sel.size} selected · {acc} · {what} {mix}{more}"


def export_selection(path: str, state, sel: np.ndarray) -> None:
    """Write the selected indices (K,) to ``.npy``, or to ``.csv`` with their label and
    prediction (``index,label,prediction``)."""
    from protoview.errors import ParameterError

    if str(path).endswith(".npy"):
        np.save(path, np.asarray(sel, np.int64))
    elif str(path).endswith(".csv"):
        rows = np.column_stack([sel, np.asarray(state.labels)[sel],
                                np.asarray(state.predictions)[sel]])
        np.savetxt(path, rows, fmt="%d", delimiter=",", header="index,label,prediction",
                   comments="")
    else:
        raise ParameterError(str(path), "choose a file name ending in .npy or .csv")
