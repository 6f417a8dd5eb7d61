"""SHOT-IM (Liang et al., ICML 2020) as the TSD repository's ``SHOTIM`` runs it.

Information maximisation on the featurizer, the classifier frozen as SHOT's hypothesis:
``loss = mean_i H(softmax(outputs_i)) + sum_c m_c log(m_c + 1e-5)`` with
``m = mean_i softmax(outputs_i)``: confident predictions (low entropy), spread over the
classes (the second term is minus the entropy of the mean prediction). Adam over the
featurizer's parameters, the whole model in train mode (see
:mod:`protoview.core.adapt._script`).

The released code has no flaw to correct here (``steps`` and ``episodic`` are honoured),
so SHOT-IM has a single behaviour, the reference's; the ``1e-5`` inside the logarithm is
SHOT's own.

The released ``softmax_entropy`` is a TorchScript function. From its second call in a
process on (the first is TorchScript's profiling run), TorchScript's autodiff adds the
gradients of its ``softmax`` and ``log_softmax`` terms together before autograd adds the
diversity term's: a different order of three float additions than eager autograd's, which
moves the gradient by about 1e-9 and the weights apart over the steps. protoview takes
TorchScript's order (:class:`_ScriptedEntropyTerms`), so it equals the released code number
for number in every step after that first call; on the very first call of a process the
two differ by that rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from protoview.core.adapt._script import SCRIPT_LR, ScriptAdapter
from protoview.core.adapt.params import EPISODIC, STEPS


class _ScriptedEntropyTerms(torch.autograd.Function):
    """``softmax(x) * log_softmax(x)`` (N, C) with TorchScript autodiff's backward: the
    two terms' gradients are summed inside this node (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        softmax, log_softmax = x.softmax(1), x.log_softmax(1)
        ctx.save_for_backward(softmax, log_softmax)
        return softmax * log_softmax

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        softmax, log_softmax = ctx.saved_tensors
        from_softmax = torch._softmax_backward_data(grad * log_softmax, softmax, 1, softmax.dtype)
        from_log = torch._log_softmax_backward_data(grad * softmax, log_softmax, 1, softmax.dtype)
        return from_softmax + from_log


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per row, (N, C) -> (N,), as the released TorchScript."""
    return -_ScriptedEntropyTerms.apply(logits).sum(1)


class SHOTIM(ScriptAdapter):
    """SHOT-IM: entropy + diversity, featurizer only."""

    method = "shot_im"
    update = "body"
    summary = (
        "SHOT's information maximisation on the featurizer (Liang et al., ICML 2020), "
        "equal to the TSD repository's SHOT-IM (a79a34e)"
    )
    params = (SCRIPT_LR, STEPS, EPISODIC)

    def _loss(self, outputs: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        ent_loss = softmax_entropy(outputs).mean(0)
        softmax_out = F.softmax(outputs, dim=1)
        msoftmax = softmax_out.mean(dim=0)
        div_loss = torch.sum(msoftmax * torch.log(msoftmax + 1e-5))
        return ent_loss + div_loss, None
