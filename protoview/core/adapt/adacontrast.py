"""AdaContrast (Chen et al., CVPR 2022): contrastive test-time adaptation.

Ported from the authors' ``target.py`` and ``moco/builder.py`` (github.com/DianCh/AdaContrast,
commit c3c8b880131f2658d6fd0d5ed14d71f326174d57; oracle
``tests/oracles/adacontrast_reference.py``) and checked against the toolkit's port
(github.com/mariodoebler/test-time-adaptation 8b2ed63, ``classification/methods/
adacontrast.py``; oracle ``tests/oracles/toolkit_adacontrast.py``), whose stream set-up it
takes where the authors' offline one cannot run on a stream.

Each batch gives three views of every image, made from its pixels (:attr:`pixels`) with each
image's own random draws: a weak one ``w`` and two strong ones ``q``, ``k`` (the authors'
"wss"; :class:`Views`). Then
one SGD step (Nesterov, momentum 0.9, weight decay 1e-4, lr 2e-4 for the featurizer and 10x
for the classifier) on every parameter, the whole model in train mode:

1. pseudo-labels: the student's features of ``w``, soft k-nearest-neighbour voting (10
   neighbours, cosine distance) over a memory bank of the momentum model's features and
   softmax outputs ("refine_predictions");
2. the key encoder (a momentum copy of featurizer and classifier) moves towards the
   student (``m = 0.999``) and encodes ``k`` (shuffled and unshuffled, as the authors'
   one-process "shuffle BN"); InfoNCE between ``q``'s normalised features, that key and a
   queue of 16384 earlier keys (temperature 0.07), negatives with the same pseudo-label as
   the query masked out ("class_aware"); the batch's keys and pseudo-labels enter the queue;
3. loss = ``alpha`` cross-entropy of ``q``'s logits with the pseudo-labels + ``beta``
   InfoNCE + ``eta`` diversity (minus the entropy of the mean prediction on ``q``);
4. the momentum model's features and softmax of ``w`` replace the oldest bank entries.

The online logits are the adapted student's in eval mode (BatchNorm on its running
statistics) on the batch itself, after the update: the toolkit's ``forward`` and the model
the authors evaluate (``eval_and_label_dataset``: ``model(imgs, cls_only=True)`` in eval
mode). The map draws the same student's features.

The authors' code vs a stream (named in the docs):

- **memory bank**: the authors fill it before adapting, from the whole target set through the
  source model in eval mode (``eval_and_label_dataset``: features and softmax, shuffled,
  ``learn.queue_size = -1``: all of them), and adapt offline for 15 epochs. A stream does
  not have the set in advance, so the bank starts empty, as in the toolkit: the first
  ``warmup_samples`` (1024) samples get ``argmax`` pseudo-labels and the bank grows by the
  momentum features of each batch up to ``bank_size`` (16384), then replaces its oldest
  entries. :meth:`AdaContrast.fill_banks` runs the authors' initialisation where the whole
  target set is at hand (Python API).
- **the MoCo queue** starts as in both codes: random normal features (normalised) and random
  labels, drawn from torch's generator (here at the first step, when the feature size and
  the classes are known).
- **augmentations**: the authors' and the toolkit's are PIL transforms in the data loader
  (uint8 images): weak = ``Resize``, ``RandomCrop``, flip; strong = MoCo v2
  (``RandomResizedCrop(scale=(0.2, 1))``, colour jitter 0.4/0.4/0.4/0.1 with p 0.8,
  grayscale p 0.2, Gaussian blur sigma in [0.1, 2] with p 0.5, flip). Here the same
  torchvision transforms run on float pixels, per image, drawing the same random numbers in
  the same order (torch's generator, python's for the blur's sigma). For batches already at
  the model's input size ``augmentation="light"`` is the toolkit's ``moco-v2-light`` (its
  choice for CIFAR-C, ImageNet-C and CCC: no crop, the weak view only flips);
  ``"moco-v2"`` adds the random resized crop (of the batch's images, not of the raw
  ones). Differences from PIL: no uint8 rounding between transforms, torchvision's tensor
  colour ops, bilinear antialiased resizing, and a Gaussian kernel of ``2 ceil(3 sigma) + 1``
  taps (capped by the image size) for PIL's box approximation of ``GaussianBlur(radius)``.
- **learning rate**: the authors decay it by a cosine over the epochs of the offline run;
  a stream has no end known in advance, so it stays constant (as the toolkit's).
- **the toolkit** differs from the authors in: no key shuffle (``key_shuffle=False``), one
  learning rate for every weight and bias except on DomainNet-126 (``head_lr_factor=1``),
  the bank set-up above; its optimiser takes only parameters named ``weight`` and ``bias``
  (a cosine head's scale stays; its ``BaseModel`` takes linear heads only). With those two
  settings this class equals the toolkit's step.

``reference`` reproduces the codes, with two flaws: the InfoNCE mask reads the queue's
labels *after* the batch entered the queue while the logits were computed against the
features *before* it (the batch's slots are masked by the batch's own labels instead of
their features' labels), and the toolkit's growing bank moves its pointer one batch behind
(when it is full, the newest batch is overwritten first). ``corrected`` masks with the
labels of the features compared, and fills the bank as a ring (oldest entry first).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._adacontrast_views import AUGMENTATIONS, Views
from protoview.core.adapt.base import Adapter, clone_state, train_only
from protoview.core.adapt.params import EPISODIC, LR, STEPS, VARIANT, Param, checked, with_default
from protoview.errors import ParameterError


class AdaContrast(Adapter):
    """AdaContrast on a split model with its momentum copy (see the module docstring)."""

    method = "adacontrast"
    summary = (
        "contrastive test-time adaptation: pseudo-labels refined by neighbours in a memory "
        "bank, InfoNCE against a momentum encoder's queue and diversity (Chen et al., CVPR "
        "2022), equal to the authors' code (DianCh/AdaContrast c3c8b88)"
    )
    params = (
        with_default(LR, 2e-4, help="SGD's learning rate of the featurizer (the authors' 2e-4)"),
        Param("head_lr_factor", 10.0, "the classifier's learning rate over lr (the authors' "
              "10; the toolkit's 1)", low=0.0),
        Param("sgd_momentum", 0.9, "SGD's momentum (Nesterov)", low=0.0, high=1.0,
              high_open=True),
        Param("weight_decay", 1e-4, "SGD's weight decay", low=0.0),
        Param("nesterov", True, "Nesterov momentum", kind="bool"),
        Param("key_momentum", 0.999, "momentum of the key encoder's moving average", low=0.0,
              high=1.0),
        Param("temperature", 0.07, "InfoNCE temperature", low=0.0, low_open=True),
        Param("queue_size", 16384, "keys in the MoCo queue of negatives", kind="int", low=1),
        Param("bank_size", 16384, "features in the memory bank of the neighbour voting (the "
              "toolkit's; the authors': the whole target set)", kind="int", low=1),
        Param("num_neighbors", 10, "neighbours voting for a pseudo-label", kind="int", low=1),
        Param("dist_type", "cosine", "distance of the neighbour voting", kind="choice",
              choices=("cosine", "euclidean")),
        Param("alpha", 1.0, "weight of the pseudo-label cross-entropy", low=0.0),
        Param("beta", 1.0, "weight of the InfoNCE loss", low=0.0),
        Param("eta", 1.0, "weight of the diversity loss", low=0.0),
        Param("contrast_type", "class_aware", "class_aware masks negatives of the query's "
              "pseudo-label; all keeps them (MoCo)", kind="choice",
              choices=("class_aware", "all")),
        Param("ce_sup_type", "weak_strong", "which view's logits the pseudo-labels (of the "
              "weak view) supervise", kind="choice", choices=("weak_strong", "weak_weak")),
        Param("warmup_samples", 1024, "samples pseudo-labelled by argmax while the empty bank "
              "fills (the toolkit's 1024)", kind="int", low=0),
        Param("augmentation", "light", "strong views: light = the toolkit's moco-v2-light "
              "(no crop), moco-v2 = with the random resized crop", kind="choice",
              choices=AUGMENTATIONS),
        Param("key_shuffle", True, "shuffle the key batch through the key encoder (the "
              "authors'; the toolkit's: false)", kind="bool"),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 2e-4,
        head_lr_factor: float = 10.0,
        sgd_momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = True,
        key_momentum: float = 0.999,
        temperature: float = 0.07,
        queue_size: int = 16384,
        bank_size: int = 16384,
        num_neighbors: int = 10,
        dist_type: str = "cosine",
        alpha: float = 1.0,
        beta: float = 1.0,
        eta: float = 1.0,
        contrast_type: str = "class_aware",
        ce_sup_type: str = "weak_strong",
        warmup_samples: int = 1024,
        augmentation: str = "light",
        key_shuffle: bool = True,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.head_lr_factor, self.sgd_momentum, self.weight_decay, self.nesterov,
            self.key_momentum, self.temperature, self.queue_size, self.bank_size,
            self.num_neighbors, self.dist_type, self.alpha, self.beta, self.eta,
            self.contrast_type, self.ce_sup_type, self.warmup_samples, self.augmentation,
            self.key_shuffle, self.steps, self.episodic, self.variant,
        ) = checked(
            self.params, lr=lr, head_lr_factor=head_lr_factor, sgd_momentum=sgd_momentum,
            weight_decay=weight_decay, nesterov=nesterov, key_momentum=key_momentum,
            temperature=temperature, queue_size=queue_size, bank_size=bank_size,
            num_neighbors=num_neighbors, dist_type=dist_type, alpha=alpha, beta=beta, eta=eta,
            contrast_type=contrast_type, ce_sup_type=ce_sup_type,
            warmup_samples=warmup_samples, augmentation=augmentation, key_shuffle=key_shuffle,
            steps=steps, episodic=episodic, variant=variant,
        )  # fmt: skip
        if self.bank_size < self.num_neighbors:
            raise ParameterError(
                "bank_size",
                f"a bank of {self.bank_size} features cannot give num_neighbors="
                f"{self.num_neighbors} neighbours",
            )
        named = list(self.model.named_parameters())
        if not named:
            raise ParameterError(
                "method", "'adacontrast' trains the model and it has no parameters"
            )
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.momentum_model = copy.deepcopy(self.model)
        self.momentum_model.requires_grad_(False)
        self.optimizer = self._build_optimizer()
        self._clear()
        self._views = Views(self.augmentation)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """``get_target_optimizer``: the featurizer at lr, the classifier at 10x lr."""
        group = {
            "momentum": self.sgd_momentum, "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
        }  # fmt: skip
        return torch.optim.SGD([
            {"params": list(self.model.featurizer.parameters()), "lr": self.lr, **group},
            {"params": list(self.model.classifier.parameters()),
             "lr": self.lr * self.head_lr_factor, **group},
        ])  # fmt: skip

    # ---- state beyond the student's weights -------------------------------------------------
    def _clear(self) -> None:
        """The momentum model back at the source, no queue (drawn at the next step), an empty
        memory bank (the toolkit's ``reset``: a new ``AdaMoCo``, empty banks)."""
        self.momentum_model.load_state_dict(self._source_state)
        self.mem_feat: torch.Tensor | None = None
        self.mem_labels: torch.Tensor | None = None
        self.queue_ptr = 0
        self.banks: dict[str, Any] = {
            "features": torch.empty(0, device=self.device),
            "probs": torch.empty(0, device=self.device),
            "ptr": 0,
        }
        self.bank_capacity = self.bank_size
        self.samples_seen = 0
        self.banks_filled = False

    def reset(self) -> None:
        super().reset()
        self._clear()

    def _extra_state(self) -> dict[str, Any]:
        return {
            "momentum": clone_state(self.momentum_model.state_dict()),
            "mem_feat": self.mem_feat,
            "mem_labels": self.mem_labels,
            "queue_ptr": self.queue_ptr,
            "banks": self.banks,
            "bank_capacity": self.bank_capacity,
            "samples_seen": self.samples_seen,
            "banks_filled": self.banks_filled,
        }

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.momentum_model.load_state_dict(extra["momentum"])
        self.mem_feat, self.mem_labels = extra["mem_feat"], extra["mem_labels"]
        self.queue_ptr, self.banks = extra["queue_ptr"], extra["banks"]
        self.bank_capacity, self.samples_seen = extra["bank_capacity"], extra["samples_seen"]
        self.banks_filled = extra["banks_filled"]

    def state_bytes(self) -> int:
        """Bytes of one snapshot: both models, the queue and the bank."""
        tensors = [*self.model.state_dict().values(), *self.momentum_model.state_dict().values()]
        tensors += [t for t in (self.mem_feat, self.mem_labels) if t is not None]
        tensors += [self.banks["features"], self.banks["probs"]]
        return sum(t.numel() * t.element_size() for t in tensors)

    # ---- the views ------------------------------------------------------------------------------
    def _check_images(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ParameterError(
                "batch",
                f"'adacontrast' makes weak and strong views of images (N, C, H, W) with 1 or 3 "
                f"channels; got shape {tuple(x.shape)}",
            )

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The weak, query and key views (each (N, C, H, W), normalised as ``x``) of a
        normalised batch, drawn image by image, weak then strong then strong
        (``NCropsTransform``), in pixel space. Changes no state but the random generators."""
        x = self._prepare(x)
        self._check_images(x)
        w, q, k = self._views(self.pixels.to_pixels(x))
        return self.pixels.from_pixels(w), self.pixels.from_pixels(q), self.pixels.from_pixels(k)

    # ---- the memory bank (target.py) ----------------------------------------------------------
    @torch.no_grad()
    def fill_banks(self, batches: Iterable[torch.Tensor]) -> None:
        """The authors' bank before adaptation (``eval_and_label_dataset``): the current model
        in eval mode over every batch of the target set, features and softmax outputs in a
        random order (torch's generator), the first ``bank_size`` kept; pseudo-labels then
        come from the neighbours from the first step on."""
        features, logits = [], []
        for x in batches:
            z, out = self.features(x)
            features.append(z)
            logits.append(out)
        if not features:
            raise ParameterError("fill_banks", "no batches to fill the memory bank from")
        feats, probs = torch.cat(features), F.softmax(torch.cat(logits), dim=1)
        rand_idxs = torch.randperm(len(feats)).to(feats.device)
        if len(feats) < self.num_neighbors:
            raise ParameterError(
                "fill_banks",
                f"{len(feats)} samples cannot give num_neighbors={self.num_neighbors} neighbours",
            )
        self.banks = {
            "features": feats[rand_idxs][: self.bank_size],
            "probs": probs[rand_idxs][: self.bank_size],
            "ptr": 0,
        }
        self.bank_capacity = len(self.banks["features"])
        self.banks_filled = True

    @torch.no_grad()
    def _pseudo_labels(self, feats_w: torch.Tensor, logits_w: torch.Tensor) -> torch.Tensor:
        """``refine_predictions``: argmax during the toolkit's warm-up, else the soft
        k-nearest-neighbour vote of the bank (``soft_k_nearest_neighbors``)."""
        probs_w = F.softmax(logits_w, dim=1)
        if not (self.banks_filled or self.samples_seen >= self.warmup_samples):
            self.samples_seen += len(feats_w)
            return probs_w.argmax(dim=1)
        bank_f, bank_p = self.banks["features"], self.banks["probs"]
        if len(bank_f) < self.num_neighbors:
            raise ParameterError(
                "num_neighbors",
                f"the memory bank holds {len(bank_f)} features, fewer than num_neighbors="
                f"{self.num_neighbors}: raise warmup_samples (samples labelled by argmax "
                f"while the bank fills) or fill the bank first",
            )
        pred_probs = []
        for feats in feats_w.split(64):
            if self.dist_type == "euclidean":
                distances = torch.cdist(feats, bank_f)
            else:
                distances = 1 - torch.matmul(
                    F.normalize(feats, dim=1), F.normalize(bank_f, dim=1).T
                )
            _, idxs = distances.sort()
            idxs = idxs[:, : self.num_neighbors]
            pred_probs.append(bank_p[idxs, :].mean(1))
        _, pred_labels = torch.cat(pred_probs).max(dim=1)
        return pred_labels

    @torch.no_grad()
    def _update_banks(self, features: torch.Tensor, logits: torch.Tensor) -> None:
        """``update_labels``: the momentum model's features and softmax of the weak view
        replace the bank's entries at its pointer; an unfilled bank grows (the toolkit's)."""
        probs = F.softmax(logits, dim=1)
        banks = self.banks
        if banks["features"].numel() == 0:  # the model may have moved since the bank was made
            banks["features"] = banks["features"].to(features.device)
            banks["probs"] = banks["probs"].to(features.device)
        start = banks["ptr"]
        end = start + len(features)
        if banks["features"].shape[0] < self.bank_capacity:
            if self.variant == "corrected":
                self._grow_ring(features, probs)
                return
            banks["features"] = torch.cat([banks["features"], features], dim=0)
            banks["probs"] = torch.cat([banks["probs"], probs], dim=0)
            banks["ptr"] = end % len(banks["features"])
        else:
            idxs_replace = torch.arange(start, end).to(features.device) % len(banks["features"])
            banks["features"][idxs_replace, :] = features
            banks["probs"][idxs_replace, :] = probs
            banks["ptr"] = end % len(banks["features"])

    def _grow_ring(self, features: torch.Tensor, probs: torch.Tensor) -> None:
        """``corrected``: fill the bank up to its capacity, then overwrite its oldest rows."""
        banks, capacity = self.banks, self.bank_capacity
        room = capacity - banks["features"].shape[0]
        banks["features"] = torch.cat([banks["features"], features[:room]], dim=0)
        banks["probs"] = torch.cat([banks["probs"], probs[:room]], dim=0)
        banks["ptr"] = len(banks["features"]) % capacity
        rest_f, rest_p = features[room:], probs[room:]
        if len(rest_f):
            idxs = (banks["ptr"] + torch.arange(len(rest_f))).to(rest_f.device) % capacity
            banks["features"][idxs, :] = rest_f
            banks["probs"][idxs, :] = rest_p
            banks["ptr"] = (banks["ptr"] + len(rest_f)) % capacity

    # ---- the MoCo queue (moco/builder.py) --------------------------------------------------------
    @torch.no_grad()
    def _ensure_queue(self, x: torch.Tensor) -> None:
        """``AdaMoCo.__init__``'s random queue: ``randn(D, K)`` normalised, ``randint(C)``."""
        if self.mem_feat is not None:
            return
        self.model.eval()
        feats, logits = self._forward(self.model, x[:1])
        feature_dim, num_classes = int(feats.shape[1]), int(logits.shape[1])
        mem_feat = torch.randn(feature_dim, self.queue_size)
        mem_labels = torch.randint(0, num_classes, (self.queue_size,))
        self.mem_feat = F.normalize(mem_feat, dim=0).to(self.device)
        self.mem_labels = mem_labels.to(self.device)
        self.queue_ptr = 0

    @torch.no_grad()
    def _update_memory(self, keys: torch.Tensor, pseudo_labels: torch.Tensor) -> None:
        assert self.mem_feat is not None and self.mem_labels is not None
        start = self.queue_ptr
        end = start + len(keys)
        idxs_replace = torch.arange(start, end).to(keys.device) % self.queue_size
        self.mem_feat[:, idxs_replace] = keys.T
        self.mem_labels[idxs_replace] = pseudo_labels
        self.queue_ptr = end % self.queue_size

    @torch.no_grad()
    def _momentum_update(self) -> None:
        m = self.key_momentum
        for param_q, param_k in zip(
            self.model.parameters(), self.momentum_model.parameters(), strict=True
        ):
            param_k.data = param_k.data * m + param_q.data * (1.0 - m)

    @torch.no_grad()
    def _keys(self, im_k: torch.Tensor) -> torch.Tensor:
        """The key encoder's normalised features, through the authors' one-process shuffle."""
        if not self.key_shuffle:
            k, _ = self._forward(self.momentum_model, im_k)
            return F.normalize(k, dim=1)
        idx_shuffle = torch.randperm(im_k.shape[0]).to(im_k.device)
        idx_unshuffle = torch.argsort(idx_shuffle)
        k, _ = self._forward(self.momentum_model, im_k[idx_shuffle])
        k = F.normalize(k, dim=1)
        return k[idx_unshuffle]

    @staticmethod
    def _forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Classifier.forward(x, return_feats=True)``: flattened features and logits."""
        feat = torch.flatten(model.featurizer(x), 1)
        return feat, model.classifier(feat)

    # ---- adaptation (target.py train_epoch, one batch) -----------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        self._check_images(x)
        if x.shape[0] > self.queue_size:
            raise ParameterError(
                "batch",
                f"a batch of {x.shape[0]} is larger than the MoCo queue (queue_size="
                f"{self.queue_size}): its keys would overwrite each other",
            )
        if self.episodic:
            self._restore_source()
            self._clear()
        self.momentum_model.to(self.device)
        self._ensure_queue(x)
        images_w, images_q, images_k = self.views(x)
        train_only(self.model, self._params)
        for _ in range(self.steps):
            self._train_step(images_w, images_q, images_k)
        self.model.eval()
        self.momentum_model.eval()
        with torch.no_grad():
            _, logits = self._forward(self.model, x)
        return logits

    def _train_step(self, images_w: torch.Tensor, images_q: torch.Tensor, images_k: torch.Tensor):
        assert self.mem_feat is not None and self.mem_labels is not None
        self.model.train()
        self.momentum_model.train()
        feats_w, logits_w = self._forward(self.model, images_w)
        pseudo_labels_w = self._pseudo_labels(feats_w.detach(), logits_w.detach())

        feats_q, logits_q = self._forward(self.model, images_q)
        q = F.normalize(feats_q, dim=1)
        with torch.no_grad():
            self._momentum_update()
            k = self._keys(images_k)
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, self.mem_feat.clone().detach()])
        logits_ins = torch.cat([l_pos, l_neg], dim=1)
        logits_ins /= self.temperature
        labels_before = self.mem_labels.clone() if self.variant == "corrected" else None
        self._update_memory(k, pseudo_labels_w)
        mem_labels = self.mem_labels if labels_before is None else labels_before

        labels_ins = torch.zeros(logits_ins.shape[0], dtype=torch.long, device=q.device)
        if self.contrast_type == "class_aware":
            mask = torch.ones_like(logits_ins, dtype=torch.bool)
            mask[:, 1:] = pseudo_labels_w.reshape(-1, 1) != mem_labels
            logits_ins = torch.where(
                mask, logits_ins, torch.tensor([float("-inf")], device=q.device)
            )
        loss_ins = F.cross_entropy(logits_ins, labels_ins)
        logits_sup = logits_q if self.ce_sup_type == "weak_strong" else logits_w
        loss_cls = F.cross_entropy(logits_sup, pseudo_labels_w)
        loss_div = _div(logits_sup) if self.eta > 0 else torch.tensor([0.0], device=q.device)
        loss = self.alpha * loss_cls + self.beta * loss_ins + self.eta * loss_div
        self.last_loss = float(loss.detach().sum())

        assert self.optimizer is not None
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

        with torch.no_grad():
            feats_w, logits_w = self._forward(self.momentum_model, images_w)
        self._update_banks(feats_w, logits_w)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        return self._forward(self.model, x)


def _div(logits: torch.Tensor, epsilon: float = 1e-8) -> torch.Tensor:
    """``div``: minus the entropy of the mean softmax (minimised: diverse predictions)."""
    probs = F.softmax(logits, dim=1)
    probs_mean = probs.mean(dim=0)
    return -torch.sum(-probs_mean * torch.log(probs_mean + epsilon))
