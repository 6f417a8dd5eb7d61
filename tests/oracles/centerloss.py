# ruff: noqa: UP008
"""The seed's CenterLoss (004_*), as a test oracle.

Ported with two changes only: the device follows the inputs (no ``use_gpu`` / ``.cuda()``),
and the deprecated ``dist_map.addbmm_(1, -2, x, centers.t())`` (which is an ``addmm`` with
beta=1, alpha=-2 on these 2-D operands) is written as ``addmm_(..., beta=1, alpha=-2)``.
The centers are passed in instead of drawn at random.
"""

import torch
import torch.nn as nn


class CenterLoss(nn.Module):
    def __init__(self, centers):
        super(CenterLoss, self).__init__()
        self.num_class = centers.shape[0]
        self.feat_dim = centers.shape[1]
        self.centers = nn.Parameter(centers.clone())

    def forward(self, x, labels):
        batch_size = x.size(0)
        dist_map = torch.pow(x, 2).sum(dim=1, keepdim=True).expand(batch_size, self.num_class) + \
            torch.pow(self.centers, 2).sum(dim=1, keepdim=True).expand(self.num_class, batch_size).t()
        dist_map.addmm_(x, self.centers.t(), beta=1, alpha=-2)
        classes = torch.arange(self.num_class, device=x.device).long()
        labels = labels.unsqueeze(1).expand(batch_size, self.num_class)
        mask = labels.eq(classes.expand(batch_size, self.num_class))
        dist = dist_map * mask.float()
        loss = dist.clamp(min=1e-12, max=1e+12).sum() / batch_size
        return loss
