# ruff: noqa: B007
"""SwAV's ``distributed_sinkhorn``, as a test oracle.

Ported from https://github.com/facebookresearch/swav at commit
06b1b7cbaf6ba2a792300d79c7299db98b93b7f9, main_swav.py (function ``distributed_sinkhorn``,
lines 353-376); the seed 001_* quoted the same function.

Changed to run here, nothing else:
- one process: ``args.world_size`` is the parameter ``world_size`` (default 1) and the
  three ``dist.all_reduce`` calls (sums over processes) are dropped;
- ``args.epsilon`` / ``args.sinkhorn_iterations`` are the parameters ``epsilon`` (0.05, the
  repository's default) / ``sinkhorn_iterations`` (3).
The arithmetic is the repository's, line for line, including ``exp(out / epsilon)`` with no
stabilisation (it overflows to Inf / NaN for small epsilon).
"""

import torch


@torch.no_grad()
def distributed_sinkhorn(out, epsilon=0.05, sinkhorn_iterations=3, world_size=1):
    Q = torch.exp(out / epsilon).t()  # Q is K-by-B for consistency with notations from our paper
    B = Q.shape[1] * world_size  # number of samples to assign
    K = Q.shape[0]  # how many prototypes

    # make the matrix sums to 1
    sum_Q = torch.sum(Q)
    Q /= sum_Q

    for it in range(sinkhorn_iterations):
        # normalize each row: total weight per prototype must be 1/K
        sum_of_rows = torch.sum(Q, dim=1, keepdim=True)
        Q /= sum_of_rows
        Q /= K

        # normalize each column: total weight per sample must be 1/B
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B

    Q *= B  # the colomns must sum to 1 so that Q is an assignment
    return Q.t()
