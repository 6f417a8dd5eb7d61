# ruff: noqa
"""LAME's released code as a test oracle.

Repository: github.com/fiveai/LAME, commit d2e5f63090bc1c8129bf7cbd781029a5955e1a67.
File: ``src/adaptation/lame.py``: the affinities, ``laplacian_optimization`` and
``entropy_energy`` verbatim; ``LAME.run_step`` as ``run_step`` below. Defaults from
``src/config/defaults.py``: ``LAME_AFFINITY = 'rbf'``, ``LAME_KNN = 5``,
``LAME_SIGMA = 1.0`` (read by no affinity), ``LAME_FORCE_SYMMETRY = False``.

Changed to run here, nothing else:
- ``run_step`` is a function of a featurizer / classifier pair instead of a method of the
  adapter: ``self.model(batched_inputs)["probas"]`` becomes ``classifier(featurizer(x))
  .softmax(-1)`` (their classifier's ``get_probas``: ``logits.softmax(-1)``) and
  ``self.model.backbone.out`` the featurizer's output (their backbone's pooled features);
  the timing hooks and ``format_result`` are dropped (``__all__`` names ``run_step``); the model is put in eval mode as
  their ``NonAdaptiveMethod.__init__`` does;
- the registry decorator and the imports of their package are dropped; ``is_psd``
  (unused, it calls ``torch.eig``, removed from torch) is kept as is.
"""

import torch
import torch.jit
import logging
from typing import List, Dict

import time
import torch.nn.functional as F

__all__ = ["run_step"]

logger = logging.getLogger(__name__)


class AffinityMatrix:

    def __init__(self, **kwargs):
        pass

    def __call__(X, **kwargs):
        raise NotImplementedError

    def is_psd(self, mat):
        eigenvalues = torch.eig(mat)[0][:, 0].sort(descending=True)[0]
        return eigenvalues, float((mat == mat.t()).all() and (eigenvalues >= 0).all())

    def symmetrize(self, mat):
        return 1 / 2 * (mat + mat.t())


class kNN_affinity(AffinityMatrix):
    def __init__(self, knn: int, **kwargs):
        self.knn = knn

    def __call__(self, X):
        N = X.size(0)
        dist = torch.norm(X.unsqueeze(0) - X.unsqueeze(1), dim=-1, p=2)  # [N, N]
        n_neighbors = min(self.knn + 1, N)

        knn_index = dist.topk(n_neighbors, -1, largest=False).indices[:, 1:]  # [N, knn]

        W = torch.zeros(N, N, device=X.device)
        W.scatter_(dim=-1, index=knn_index, value=1.0)

        return W


class rbf_affinity(AffinityMatrix):
    def __init__(self, sigma: float, **kwargs):
        self.sigma = sigma
        self.k = kwargs['knn']

    def __call__(self, X):

        N = X.size(0)
        dist = torch.norm(X.unsqueeze(0) - X.unsqueeze(1), dim=-1, p=2)  # [N, N]
        n_neighbors = min(self.k, N)
        kth_dist = dist.topk(k=n_neighbors, dim=-1, largest=False).values[:, -1]  # compute k^th distance for each point, [N, knn + 1]
        sigma = kth_dist.mean()
        rbf = torch.exp(- dist ** 2 / (2 * sigma ** 2))
        # mask = torch.eye(X.size(0)).to(X.device)
        # rbf = rbf * (1 - mask)
        return rbf


class linear_affinity(AffinityMatrix):

    def __call__(self, X: torch.Tensor):
        """
        X: [N, d]
        """
        return torch.matmul(X, X.t())


def run_step(featurizer, classifier, x, affinity="rbf", knn=5, sigma=1.0, force_symmetry=False):
    """``LAME.run_step`` on one batch; returns ``Y`` (N, K)."""
    affinity = eval(f'{affinity}_affinity')(sigma=sigma, knn=knn)
    featurizer.eval()
    classifier.eval()
    with torch.no_grad():

        feats = featurizer(x)
        probas = classifier(feats).softmax(-1)  # [N, K]

        # --- Get unary and terms and kernel ---

        unary = - torch.log(probas + 1e-10)  # [N, K]

        feats = F.normalize(feats, p=2, dim=-1)  # [N, d]
        kernel = affinity(feats)  # [N, N]
        if force_symmetry:
            kernel = 1/2 * (kernel + kernel.t())

        # --- Perform optim ---
        Y = laplacian_optimization(unary, kernel)

    return Y


def laplacian_optimization(unary, kernel, bound_lambda=1, max_steps=100):

    E_list = []
    oldE = float('inf')
    Y = (-unary).softmax(-1)  # [N, K]
    for i in range(max_steps):
        pairwise = bound_lambda * kernel.matmul(Y)  # [N, K]
        exponent = -unary + pairwise
        Y = exponent.softmax(-1)
        E = entropy_energy(Y, unary, pairwise, bound_lambda).item()
        E_list.append(E)

        if (i > 1 and (abs(E - oldE) <= 1e-8 * abs(oldE))):
            logger.info(f'Converged in {i} iterations')
            break
        else:
            oldE = E

    return Y


def entropy_energy(Y, unary, pairwise, bound_lambda):
    E = (unary * Y - bound_lambda * pairwise * Y + Y * torch.log(Y.clip(1e-20))).sum()
    return E
