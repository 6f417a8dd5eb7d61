"""What every test-time adapter shares: the interface, parameter choice, the support memory.

An adapter wraps a :class:`~protoview.core.model.SplitModel` and changes it in place:

- ``step(x)`` adapts on one batch and returns the *online* logits ``(N, C)`` (detached);
- ``predict(x)`` / ``features(x)`` run the adapter's prediction mode without adapting
  (used for the full-set accuracy and for the features drawn on the map). For bn, tent
  and tsd that mode normalises BatchNorm with the statistics of the batch given (as their
  online predictions do), so feed shuffled batches of the adaptation batch size;
- ``reset()`` puts back the source weights, a fresh optimizer and the warm-up memory;
- ``snapshot()`` / ``restore()`` copy and put back the whole state (divergence guard);
- ``last_loss`` is the loss of the last update and ``last_selected`` the number of samples
  that entered it, for methods that select samples (``None`` for the others): a NaN loss
  with ``last_selected == 0`` is the mean over an empty selection, not divergence.

Flags an adapter needs (train/eval mode, ``requires_grad``, BatchNorm's
``track_running_stats``) are set for the duration of each call and put back afterwards,
so the shared model is never left half-configured between calls.

Class attributes every method sets in its module: ``method`` (its registry name), ``params``
(its declared parameters), ``summary`` (one line) and ``batch_statistics``: True when the
method normalises BatchNorm with the statistics of the batch it is given (BatchNorm in
train mode, :func:`use_batch_statistics`, in ``step`` or in its prediction mode: bn, tent,
pl, plc, shot_im, tsd, eata, sar); False when a batch of one sample is as good as any
(none, t3a, lame: eval-mode BatchNorm; MEMO adapts one sample at a time). The default is
True, the safe side: :class:`~protoview.core.adapt.run.AdaptRun` then refuses
``--batch-size 1`` on a model with BatchNorm layers (a single sample has no batch
statistics) and merges a last batch of one sample into the batch before it. A method on a
model without BatchNorm (GroupNorm, LayerNorm) takes batches of one either way, as SAR's
and the toolkit's batch-size-1 experiments do. ``per_sample_predictions``: True when the
prediction mode (``predict`` / ``features``) gives each sample the same output in any
batch (none, t3a), so a run adapting on batches of one refreshes its map 64 samples at a
time; default False (LAME's prediction depends on the batch's other samples).
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from protoview.core.adapt.params import UPDATE_CHOICES, Param
from protoview.core.heads import head_proxies
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from protoview.core.adapt.augment import PixelSpace


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per row: (N, C) float -> (N,) float (nats)."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def batchnorm_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """All BatchNorm layers (1d/2d/3d/sync) of ``model`` with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)]


def affine_norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The normalisation layers whose scale and shift entropy methods adapt.

    BatchNorm layers (Tent's choice, the authors' and the TSD repository's); on a model
    without BatchNorm (a ViT, Swin or ConvNeXt) its LayerNorm and GroupNorm layers, as the
    toolkit's Tent and EATA collect them (mariodoebler/test-time-adaptation 8b2ed63,
    ``collect_params``; on a model with both kinds the toolkit takes both, here BatchNorm
    only: on such models Tent stays equal to its reference code).
    """
    found: list[tuple[str, nn.Module]] = list(batchnorm_layers(model))
    if not found:
        found = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm))
        ]
    return found


def select_parameters(model: nn.Module, update: str) -> list[tuple[str, nn.Parameter]]:
    """The parameters an adapter updates, with their names in ``model.named_parameters()``.

    ``update``: ``"all"`` every parameter; ``"affine"`` the scale and shift of the
    normalisation layers (:func:`affine_norm_layers`: BatchNorm's, or LayerNorm's and
    GroupNorm's on a model without BatchNorm; Tent's choice); ``"body"`` the featurizer's;
    ``"head"`` the classifier's.
    Raises :class:`ParameterError` (``where="update"``) for an unknown choice or none found.
    """
    if update == "all":
        chosen = list(model.named_parameters())
    elif update == "affine":
        chosen = [
            (f"{name}.{pname}", p)
            for name, m in affine_norm_layers(model)
            for pname, p in m.named_parameters(recurse=False)
            if pname in ("weight", "bias")
        ]
    elif update in ("body", "head"):
        part = "featurizer" if update == "body" else "classifier"
        chosen = [(f"{part}.{n}", p) for n, p in getattr(model, part).named_parameters()]
    else:
        raise ParameterError(
            "update", f"unknown choice {update!r}; choose one of {', '.join(UPDATE_CHOICES)}"
        )
    if not chosen:
        what = (
            "BatchNorm, LayerNorm or GroupNorm layers with scale and shift"
            if update == "affine"
            else "parameters"
        )
        raise ParameterError(
            "update", f"update={update!r} selects nothing: the model has no {what}"
        )
    return chosen


def check_split_model(model: Any) -> nn.Module:
    """Return ``model`` if it has a ``featurizer`` and a ``classifier`` module, else raise."""
    ok = isinstance(model, nn.Module) and all(
        isinstance(getattr(model, part, None), nn.Module) for part in ("featurizer", "classifier")
    )
    if not ok:
        raise ParameterError(
            "model", "adapters need a SplitModel (a featurizer and a classifier module)"
        )
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for an empty model."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def clone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached copy of a ``state_dict`` (same devices)."""
    return {k: v.detach().clone() for k, v in state.items()}


def tensors_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """True when every floating tensor holds only finite values."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point() and t.numel()]
    return bool(torch.stack(flags).all()) if flags else True


def use_batch_statistics(model: nn.Module, whole_model_training: bool = False) -> None:
    """BatchNorm normalises with each batch's own statistics and leaves its running ones alone.

    The other modules go to train mode when ``whole_model_training`` else to eval mode.
    Call it inside :func:`kept_flags`, which puts the flags back.
    """
    model.train(whole_model_training)
    for _, layer in batchnorm_layers(model):
        layer.train()
        layer.track_running_stats = False


def train_only(model: nn.Module, params: Sequence[nn.Parameter]) -> None:
    """Gradients for ``params`` only: every other parameter of ``model`` is frozen."""
    chosen = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)


@contextlib.contextmanager
def kept_flags(model: nn.Module) -> Iterator[None]:
    """Put back every module's train/eval mode, ``requires_grad`` and BN tracking flag on exit."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    tracking = [(m, m.track_running_stats) for _, m in batchnorm_layers(model)]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in tracking:
            m.track_running_stats = flag


@dataclass
class SupportMemory:
    """T3A / TSD memory of support features.

    supports: (M, D) float32 features; labels: (M, C) float32 one-hot predicted classes;
    entropy: (M,) float32 prediction entropy; scores: (M, C) float32 softmax (TSD only).
    """

    supports: torch.Tensor
    labels: torch.Tensor
    entropy: torch.Tensor
    scores: torch.Tensor | None = None

    @classmethod
    @torch.no_grad()
    def from_head(cls, classifier: nn.Module, with_scores: bool) -> tuple[SupportMemory, int]:
        """Warm-up memory: every head row (``C*P`` of them) labelled by ``argmax classifier(row)``.

        Returns the memory and ``num_classes = classifier(rows).shape[1]`` (C, not C*P).
        Raises :class:`ParameterError` (``where="classifier"``) for heads without weight rows.
        """
        try:
            rows, _ = head_proxies(classifier)
        except TypeError as exc:
            raise ParameterError(
                "classifier", f"{exc}; T3A and TSD need such a head for their warm-up supports"
            ) from None
        rows = rows.detach().clone().float()
        logits = classifier(rows)
        num_classes = int(logits.shape[1])
        labels = F.one_hot(logits.argmax(1), num_classes=num_classes).float()
        scores = F.softmax(logits, 1) if with_scores else None
        return cls(rows, labels, softmax_entropy(logits), scores), num_classes

    def __len__(self) -> int:
        return int(self.supports.shape[0])

    def clone(self) -> SupportMemory:
        scores = None if self.scores is None else self.scores.clone()
        return SupportMemory(
            self.supports.clone(), self.labels.clone(), self.entropy.clone(), scores
        )

    def to(self, device: torch.device) -> SupportMemory:
        scores = None if self.scores is None else self.scores.to(device)
        return SupportMemory(
            self.supports.to(device), self.labels.to(device), self.entropy.to(device), scores
        )

    def append(self, z: torch.Tensor, logits: torch.Tensor) -> None:
        """Add a batch: features (B, D), classifier logits (B, C), both detached here."""
        z, logits = z.detach(), logits.detach()
        num_classes = self.labels.shape[1]
        self.supports = torch.cat([self.supports, z])
        self.labels = torch.cat(
            [self.labels, F.one_hot(logits.argmax(1), num_classes=num_classes).float()]
        )
        self.entropy = torch.cat([self.entropy, softmax_entropy(logits)])
        if self.scores is not None:
            self.scores = torch.cat([self.scores, F.softmax(logits, 1)])

    def select(self, filter_k: int, legacy_minus_one: bool = False) -> None:
        """Keep the ``filter_k`` lowest-entropy supports of each predicted class.

        ``filter_k == -1`` keeps all; with ``legacy_minus_one`` it reproduces the reference
        code instead, whose ``-1`` branch is dead: ``[:-1]`` drops each class's
        highest-entropy support. The kept supports are grouped by class (in class order),
        each group sorted by ascending entropy; ``-1`` (keep all) keeps arrival order.
        """
        if filter_k == -1 and not legacy_minus_one:
            return  # keep all, in arrival order (DomainBed's T3A)
        predicted = self.labels.argmax(dim=1).long()
        every = torch.arange(len(self.entropy), device=self.entropy.device)
        kept = []
        for c in range(self.labels.shape[1]):
            _, order = torch.sort(self.entropy[predicted == c])
            kept.append(every[predicted == c][order][:filter_k])
        idx = torch.cat(kept)
        self.supports, self.labels, self.entropy = (
            self.supports[idx],
            self.labels[idx],
            self.entropy[idx],
        )
        if self.scores is not None:
            self.scores = self.scores[idx]

    def prototype_weights(self) -> torch.Tensor:
        """(C, D) per-class sums of L2-normalised supports: ``(normalize(S).T @ labels).T``."""
        return (F.normalize(self.supports, dim=1).T @ self.labels).T


@dataclass
class AdapterSnapshot:
    """Everything :meth:`Adapter.restore` needs to go back to a former state."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    memory: SupportMemory | None
    steps_done: int
    last_loss: float | None
    last_selected: int | None = None
    extra: dict[str, Any] | None = None


class Adapter(ABC):
    """Base of all test-time adapters (see the module docstring for the contract)."""

    method: ClassVar[str] = ""
    #: Every keyword ``__init__`` takes besides the model, with its default, range and help.
    params: ClassVar[tuple[Param, ...]] = ()
    #: One line: what it does, the paper (venue, year), the released code it equals.
    summary: ClassVar[str] = ""
    #: What the method needs beyond the test stream: "" (nothing) or "labelled source data"
    #: (RMT's source prototypes, warm-up and replay): :meth:`use_source` receives it.
    needs_source: ClassVar[str] = ""
    #: Normalises BatchNorm with each batch's own statistics (see the module docstring):
    #: True refuses batches of one sample on models with BatchNorm layers.
    batch_statistics: ClassVar[bool] = True
    #: The prediction mode gives a sample the same output in any batch (see the docstring).
    per_sample_predictions: ClassVar[bool] = False

    def __init__(self, model: nn.Module) -> None:
        self.model = check_split_model(model)
        self.updated_parameter_names: tuple[str, ...] = ()
        self.optimizer: torch.optim.Optimizer | None = None
        self.memory: SupportMemory | None = None
        self.last_loss: float | None = None
        self.last_selected: int | None = None
        self.last_features: torch.Tensor | None = None
        self.steps_done = 0
        #: How the batches were prepared (the dataset's; :class:`AdaptRun` sets it, else the
        #: checkpoint's): augmenting methods go back to pixels with it (:attr:`pixels`).
        self.input_transform: TransformSpec | None = getattr(
            getattr(model, "info", None), "transform", None
        )
        self._source_state = clone_state(model.state_dict())
        self._source_memory: SupportMemory | None = None

    @classmethod
    def from_params(cls, model: nn.Module, **params: Any) -> Adapter:
        """The adapter on ``model`` with the declared ``params`` given by name."""
        return cls(model, **params)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    @property
    def pixels(self) -> PixelSpace:
        """Between this adapter's batches and their pixels in [0, 1] (see ``augment``)."""
        from protoview.core.adapt.augment import PixelSpace

        return PixelSpace.of(self.input_transform)

    # ---- public interface -------------------------------------------------------------
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Adapt on one batch ``x`` (N, ...) float32; return the online logits (N, C), detached.

        ``last_features`` then holds the features (N, D) float32 of the same forward pass
        (see :class:`FeatureTap`), or None when the featurizer was not called."""
        x = self._prepare(x)
        tap = FeatureTap(self.model)
        with kept_flags(self.model), _readable_errors(x), torch.enable_grad(), tap:
            logits = self._adapt(x)
        self.steps_done += 1
        self.last_features = tap.features_for(logits)
        return logits.detach()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of the adapter's prediction mode; adapts nothing."""
        return self.features(x)[1]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, D) and logits (N, C) in the adapter's prediction mode; adapts nothing."""
        x = self._prepare(x)
        with kept_flags(self.model), _readable_errors(x):
            z, logits = self._features(x)
        return z.detach(), logits.detach()

    @classmethod
    def missing_source_data(cls) -> ParameterError:
        """The one error of a method that needs source data (:attr:`needs_source`) and has
        none; raised by the command line before anything opens, by :class:`AdaptRun`, and by
        a step of an adapter never given any."""
        return ParameterError(
            "--source-data",
            f"{cls.method!r} needs {cls.needs_source}: pass --source-data DATA (the data the "
            "model was trained on, with labels, e.g. cifar10:ROOT:train; AdaptRun(source=...) "
            "in Python)",
        )

    def use_source(self, loader: Any) -> None:
        """Take the source data (an iterable of ``(x, y)`` batches that can be iterated
        again, a shuffling DataLoader as the authors build it), for a method whose
        :attr:`needs_source` says so; :class:`AdaptRun` calls it once, before the first step."""
        del loader

    def reset(self) -> None:
        """Back to the source weights, a fresh optimizer state and the warm-up memory."""
        self._restore_source()
        self.steps_done = 0
        self.last_loss = None
        self.last_selected = None

    def snapshot(self) -> AdapterSnapshot:
        """A copy of the current weights, optimizer state and memory."""
        opt = copy.deepcopy(self.optimizer.state_dict()) if self.optimizer is not None else None
        memory = self.memory.clone() if self.memory is not None else None
        return AdapterSnapshot(
            clone_state(self.model.state_dict()),
            opt,
            memory,
            self.steps_done,
            self.last_loss,
            self.last_selected,
            copy.deepcopy(self._extra_state()),
        )

    def restore(self, snap: AdapterSnapshot) -> None:
        """Put back a state taken by :meth:`snapshot`."""
        self.model.load_state_dict(snap.model_state)
        if self.optimizer is not None and snap.optimizer_state is not None:
            self.optimizer.load_state_dict(copy.deepcopy(snap.optimizer_state))
        self.memory = snap.memory.clone() if snap.memory is not None else None
        self.steps_done, self.last_loss = snap.steps_done, snap.last_loss
        self.last_selected = snap.last_selected
        self._load_extra_state(copy.deepcopy(snap.extra))

    def one_sample_problem(self) -> str | None:
        """Why this adapter cannot adapt on a batch of one sample, or None when it can. By
        default: it normalises BatchNorm with batch statistics (``batch_statistics``) and
        the model has BatchNorm layers."""
        if self.batch_statistics and batchnorm_layers(self.model):
            return (f"{self.method or type(self).__name__} normalises BatchNorm with the "
                    "statistics of each batch, which a batch of one sample does not have (one "
                    "value per channel after pooling, the spread of a single image otherwise)")
        return None

    def state_is_finite(self) -> bool:
        """True when every floating parameter and buffer is finite."""
        return tensors_finite(list(self.model.state_dict().values()))

    def state_bytes(self) -> int:
        """Bytes one :meth:`snapshot` of the model holds."""
        return sum(t.numel() * t.element_size() for t in self.model.state_dict().values())

    # ---- for subclasses -----------------------------------------------------------------
    @abstractmethod
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        """One adaptation step on a prepared batch; returns the online logits."""

    @abstractmethod
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction-mode features and logits (called under ``no_grad``)."""

    def _build_optimizer(self) -> torch.optim.Optimizer | None:
        return None

    def _extra_state(self) -> dict[str, Any] | None:
        """Method state beyond weights, optimizer and memory (EATA's, SAR's), for snapshots."""
        return None

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        """Put back what :meth:`_extra_state` returned (nothing to do by default)."""
        del extra

    def _restore_source(self) -> None:
        self.model.load_state_dict(self._source_state)
        self.optimizer = self._build_optimizer()
        self.memory = self._source_memory.clone() if self._source_memory is not None else None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ParameterError("batch", f"expected a torch tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ParameterError(
                "batch", f"expected a non-empty batch (N, ...), got shape {tuple(x.shape)}"
            )
        return x.to(device=self.device, dtype=torch.float32)


class FeatureTap:
    """Records, during one adaptation step, what the featurizer and the classifier saw.

    A step's own forward pass already computes the batch's features; the tap keeps them
    (detached) so the map can move those points without another pass. With several
    forward passes in a step (``steps > 1``), :meth:`features_for` returns the features
    that produced the returned logits (the classifier call whose output they are), else
    (logits computed otherwise, e.g. T3A's templates) the first featurizer output.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._outputs: list[torch.Tensor] = []
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._handles: list[Any] = []

    def __enter__(self) -> FeatureTap:
        def on_features(_module, _args, out):
            if isinstance(out, torch.Tensor):
                self._outputs.append(out.detach())

        def on_logits(_module, args, out):
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
                self._pairs.append((args[0].detach(), out.detach()))

        self._handles = [
            self.model.featurizer.register_forward_hook(on_features),
            self.model.classifier.register_forward_hook(on_logits),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def features_for(self, logits: torch.Tensor) -> torch.Tensor | None:
        """(N, D) float32 features behind ``logits`` (N, C), or None."""
        n = logits.shape[0]
        chosen = None
        for z, out in self._pairs:
            if out.shape == logits.shape and out.data_ptr() == logits.data_ptr():
                chosen = z
                break
        if chosen is None:
            chosen = next((z for z in self._outputs if z.shape[0] == n), None)
        self._outputs, self._pairs = [], []
        if chosen is None:
            return None
        return (chosen.flatten(1) if chosen.ndim > 2 else chosen).float()


@contextlib.contextmanager
def _readable_errors(x: torch.Tensor) -> Iterator[None]:
    """Turn torch's errors about a batch the model cannot take into a ParameterError."""
    try:
        yield
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError(
            "batch", f"the model cannot process a batch of shape {tuple(x.shape)} ({first})"
        ) from exc
