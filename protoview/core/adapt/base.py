"""What every test-time adapter shares: the interface, parameter choice, the support memory.

The interface (:class:`Adapter`, :class:`FeatureTap`) is here; the model parts an adapter
touches and the parameters it updates are in ``_layers``, the support memory and
:func:`softmax_entropy` in ``_support``, both importable from here.

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from protoview.core.adapt._layers import (
    affine_norm_layers,
    batchnorm_layers,
    check_split_model,
    clone_state,
    kept_flags,
    model_device,
    select_parameters,
    tensors_finite,
    train_only,
    use_batch_statistics,
)
from protoview.core.adapt._support import SupportMemory, softmax_entropy
from protoview.core.adapt.params import Param
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from protoview.core.adapt.augment import PixelSpace

#: What methods import from here: the base class and its snapshot, and (from the private
#: modules beside it) the model parts an adapter touches and the support memory.
__all__ = [
    "Adapter",
    "AdapterSnapshot",
    "FeatureTap",
    "SupportMemory",
    "affine_norm_layers",
    "batchnorm_layers",
    "check_split_model",
    "clone_state",
    "kept_flags",
    "model_device",
    "select_parameters",
    "softmax_entropy",
    "tensors_finite",
    "train_only",
    "use_batch_statistics",
]


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
