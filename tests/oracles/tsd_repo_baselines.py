"""The TSD repository's baselines (ERM, BN, Tent, PseudoLabel, SHOTIM, T3A) as test oracles.

Repository: github.com/SakurajimaMaiii/TSD, commit a79a34e50922ea7a91ed8427c9d69e11e040fcde.
Files: ``code/adapt_algorithm.py`` (the classes and helpers, verbatim) and
``code/unsupervise_adapt.py`` (``build_as_script``: its "set adapt model and optimizer"
block, which chooses each method's optimiser and parameter group).

Changed to run here, nothing else:
- ``.cuda()`` in ``T3A.select_supports`` -> ``.to(ent_s.device)``; ``adapt_model.cuda()``
  of the script dropped;
- ``T3A`` takes the warm-up rows as ``classifier_weight`` (the released code reads
  ``self.classifier.fc.weight``) and optionally ``num_classes`` (C for a cosine head with
  several proxies per class; the default is the released ``warmup_supports.size()[0]``);
- ``softmax_entropy`` is compiled with ``torch.jit.script`` as released, with torch's
  deprecation warning of ``torch.jit.script`` silenced;
- the model passed in must have ``featurizer``, ``classifier`` and ``predict`` (the
  released ``ERM`` algorithm's ``predict(x) = network(x)``): see ``ReleasedNet`` in the
  tests. The script's ``args`` become keyword arguments with the script's defaults.
The existing ``tsd_reference.py`` (ported from the seed) equals this commit's ``TSD``
class token for token apart from its own listed porting changes.
"""

import warnings
from copy import deepcopy

import torch
import torch.nn as nn
import torch.nn.functional as F


def _softmax_entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax distribution from logits."""
    return -(x.softmax(1) * x.log_softmax(1)).sum(1)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    softmax_entropy = torch.jit.script(_softmax_entropy)


def collect_params(model):
    """Collect the affine scale + shift parameters from batch norms.
    Walk the model's modules and collect all batch normalization parameters.
    Return the parameters and their names.
    Note: other choices of parameterization are possible!
    """
    params = []
    names = []
    for nm, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            for np, p in m.named_parameters():
                if np in ['weight', 'bias']:  # weight is scale, bias is shift
                    params.append(p)
                    names.append(f"{nm}.{np}")
    return params, names


def copy_model_and_optimizer(model, optimizer):
    """Copy the model and optimizer states for resetting after adaptation."""
    model_state = deepcopy(model.state_dict())
    optimizer_state = deepcopy(optimizer.state_dict())
    return model_state, optimizer_state


def load_model_and_optimizer(model, optimizer, model_state, optimizer_state):
    """Restore the model and optimizer states from copies."""
    model.load_state_dict(model_state, strict=True)
    optimizer.load_state_dict(optimizer_state)


def configure_model(model):
    """Configure model for use with tent."""
    # train mode, because tent optimizes the model to minimize entropy
    model.train()
    # disable grad, to (re-)enable only what tent updates
    model.requires_grad_(False)
    # configure norm for tent updates: enable grad + force batch statisics
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(True)
            # force use of batch stats in train and eval modes
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
    return model


class ERM(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.eval()
        self.featurizer = model.featurizer
        self.classifier = model.classifier

    @torch.no_grad()
    def forward(self, x):
        outputs = self.model.predict(x)
        return outputs


class BN(nn.Module):
    def __init__(self, model, steps=1, episodic=False):
        super().__init__()
        self.model = model
        self.steps = steps
        self.episodic = episodic
        assert self.steps >= 0, 'steps must be non-negative'
        if self.steps == 0:
            self.model.eval()

    @torch.no_grad()
    def forward(self, x):
        if self.steps > 0:
            for _ in range(self.steps):
                outputs = self.model.predict(x)
        else:
            outputs = self.model.predict(x)
        return outputs


class Tent(nn.Module):
    """
    ICLR,2021
    Tent adapts a model by entropy minimization during testing.
    Once tented, a model adapts itself by updating on every forward.
    """
    def __init__(self, model, optimizer, steps=1, episodic=False):
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.steps = steps
        assert steps > 0, "tent requires >= 1 step(s) to forward and update"
        self.episodic = episodic

        # note: if the model is never reset, like for continual adaptation,
        # then skipping the state copy would save memory
        self.model_state, self.optimizer_state = \
            copy_model_and_optimizer(self.model, self.optimizer)

    def forward(self, x):
        if self.episodic:
            self.reset()

        for _ in range(self.steps):
            outputs = self.forward_and_adapt(x, self.model, self.optimizer)

        return outputs

    def reset(self):
        if self.model_state is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved model/optimizer state")
        load_model_and_optimizer(self.model, self.optimizer,
                                 self.model_state, self.optimizer_state)

    @torch.enable_grad()
    def forward_and_adapt(self, x, model, optimizer):
        """Forward and adapt model on batch of data.
        Measure entropy of the model prediction, take gradients, and update params.
        """
        # forward
        outputs = model.predict(x)
        # adapt
        loss = softmax_entropy(outputs).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return outputs


class PseudoLabel(nn.Module):
    def __init__(self, model, optimizer, beta=0.9, steps=1, episodic=False):
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.steps = steps
        assert steps > 0, "requires >= 1 step(s) to forward and update"
        self.episodic = episodic
        self.beta = beta  # threshold for selecting pseudo labels
        self.model_state, self.optimizer_state = \
            copy_model_and_optimizer(self.model, self.optimizer)

    def forward(self, x):
        if self.episodic:
            self.reset()

        for _ in range(self.steps):
            outputs = self.forward_and_adapt(x, self.model, self.optimizer)

        return outputs

    def reset(self):
        if self.model_state is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved model/optimizer state")
        load_model_and_optimizer(self.model, self.optimizer,
                                 self.model_state, self.optimizer_state)

    @torch.enable_grad()
    def forward_and_adapt(self, x, model, optimizer):
        # forward
        outputs = model.predict(x)
        # adapt
        scores = F.softmax(outputs, 1)
        py, y_prime = torch.max(scores, 1)
        mask = py > self.beta
        loss = F.cross_entropy(outputs[mask], y_prime[mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return outputs


class SHOTIM(nn.Module):
    """
    SHOT-IM ,ICML 2020
    """
    def __init__(self, model, optimizer, steps=1, episodic=False):
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.steps = steps
        assert steps > 0, "requires >= 1 step(s) to forward and update"
        self.episodic = episodic

        # note: if the model is never reset, like for continual adaptation,
        # then skipping the state copy would save memory
        self.model_state, self.optimizer_state = \
            copy_model_and_optimizer(self.model, self.optimizer)

    def forward(self, x):
        if self.episodic:
            self.reset()

        for _ in range(self.steps):
            outputs = self.forward_and_adapt(x, self.model, self.optimizer)

        return outputs

    def reset(self):
        if self.model_state is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved model/optimizer state")
        load_model_and_optimizer(self.model, self.optimizer,
                                 self.model_state, self.optimizer_state)

    @torch.enable_grad()
    def forward_and_adapt(self, x, model, optimizer):
        # forward
        outputs = model.predict(x)
        # adapt
        ent_loss = softmax_entropy(outputs).mean(0)
        softmax_out = F.softmax(outputs, dim=1)
        msoftmax = softmax_out.mean(dim=0)
        div_loss = torch.sum(msoftmax * torch.log(msoftmax + 1e-5))
        loss = ent_loss + div_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return outputs


class T3A(nn.Module):
    """
    T3A, NeurIPS 2021
    """
    def __init__(self, model, filter_K=100, steps=1, episodic=False, *,
                 classifier_weight, num_classes=None):
        super().__init__()
        self.model = model.eval()
        self.featurizer = model.featurizer
        self.classifier = model.classifier
        self.steps = steps
        assert steps > 0, "requires >= 1 step(s) to forward and update"
        self.episodic = episodic
        self.filter_K = filter_K

        warmup_supports = classifier_weight.data
        self.num_classes = warmup_supports.size()[0] if num_classes is None else num_classes
        self.warmup_supports = warmup_supports
        warmup_prob = self.classifier(self.warmup_supports)
        self.warmup_ent = softmax_entropy(warmup_prob)
        self.warmup_labels = F.one_hot(warmup_prob.argmax(1), num_classes=self.num_classes).float()
        self.supports = self.warmup_supports.data
        self.labels = self.warmup_labels.data
        self.ent = self.warmup_ent.data

    @torch.no_grad()
    def forward(self, x):
        z = self.featurizer(x)
        p = self.classifier(z)
        yhat = torch.nn.functional.one_hot(p.argmax(1), num_classes=self.num_classes).float()
        ent = softmax_entropy(p)

        self.supports = self.supports.to(z.device)
        self.labels = self.labels.to(z.device)
        self.ent = self.ent.to(z.device)
        self.supports = torch.cat([self.supports, z])
        self.labels = torch.cat([self.labels, yhat])
        self.ent = torch.cat([self.ent, ent])

        supports, labels = self.select_supports()
        supports = torch.nn.functional.normalize(supports, dim=1)
        weights = (supports.T @ (labels))

        return z @ torch.nn.functional.normalize(weights, dim=0)

    def select_supports(self):
        ent_s = self.ent
        y_hat = self.labels.argmax(dim=1).long()
        filter_K = self.filter_K
        if filter_K == -1:
            indices = torch.LongTensor(list(range(len(ent_s))))  # noqa: F841 - dead, as released

        indices = []
        indices1 = torch.LongTensor(list(range(len(ent_s)))).to(ent_s.device)
        for i in range(self.num_classes):
            _, indices2 = torch.sort(ent_s[y_hat == i])
            indices.append(indices1[y_hat == i][indices2][:filter_K])
        indices = torch.cat(indices)

        self.supports = self.supports[indices]
        self.labels = self.labels[indices]
        self.ent = self.ent[indices]

        return self.supports, self.labels


def build_as_script(adapt_alg, algorithm, *, lr=1e-4, beta=0.9, steps=1, episodic=False,
                    filter_K=100, classifier_weight=None, num_classes=None):
    """``unsupervise_adapt.py``'s model set-up: ``algorithm.train()`` (done right after the
    algorithm is built) and its "set adapt model and optimizer" branch for ``adapt_alg``."""
    algorithm.train()
    if adapt_alg == "Tent":
        algorithm = configure_model(algorithm)
        params, _ = collect_params(algorithm)
        optimizer = torch.optim.Adam(params, lr=lr)
        adapt_model = Tent(
            algorithm, optimizer, steps=steps, episodic=episodic
        )
    elif adapt_alg == "ERM":
        adapt_model = ERM(algorithm)
    elif adapt_alg == "PL":
        optimizer = torch.optim.Adam(algorithm.parameters(), lr=lr)
        adapt_model = PseudoLabel(
            algorithm, optimizer, beta, steps=steps, episodic=episodic
        )
    elif adapt_alg == "PLC":
        optimizer = torch.optim.Adam(algorithm.classifier.parameters(), lr=lr)
        adapt_model = PseudoLabel(
            algorithm, optimizer, beta, steps=steps, episodic=episodic
        )
    elif adapt_alg == "SHOT-IM":
        optimizer = torch.optim.Adam(algorithm.featurizer.parameters(), lr=lr)
        adapt_model = SHOTIM(
            algorithm, optimizer, steps=steps, episodic=episodic
        )
    elif adapt_alg == "T3A":
        adapt_model = T3A(
            algorithm, filter_K=filter_K, steps=steps, episodic=episodic,
            classifier_weight=classifier_weight, num_classes=num_classes,
        )
    elif adapt_alg == "BN":
        adapt_model = BN(algorithm)
    else:
        raise ValueError(adapt_alg)
    return adapt_model
