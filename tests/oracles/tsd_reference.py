"""The authors' TSD (seed 001_*, github.com/SakurajimaMaiii/TSD adapt_algorithm.py) as a test oracle.

Ported verbatim except:
- ``.cuda()`` -> the device of the data (``ent_s.device``);
- the classifier's weight is given as the ``classifier_weight`` argument instead of being
  read from ``self.classifier.fc.weight``;
- ``num_classes`` may be given: the seed uses the number of weight rows, which is C for an
  ``nn.Linear`` head (the default, unchanged) but ``C*P`` for a cosine head with
  ``nb_proxy=P`` (the seed then crashes); tests pass ``C`` for such heads;
- ``softmax_entropy`` is a plain function (the seed wraps it in ``torch.jit.script``).
Nothing else changed: ``filter_K == -1`` dead code, the ``[:filter_K]`` slice, the KL as
written, ``steps`` / ``episodic`` ignored.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def softmax_entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax distribution from logits."""
    return -(x.softmax(1) * x.log_softmax(1)).sum(1)


class TSD(nn.Module):
    """
    Test-time Self-Distillation (TSD)
    CVPR 2023
    """

    def __init__(
        self,
        model,
        optimizer,
        lam=0,
        filter_K=100,
        steps=1,
        episodic=False,
        *,
        classifier_weight,
        num_classes=None,
    ):
        super().__init__()
        self.model = model
        self.featurizer = model.featurizer
        self.classifier = model.classifier
        self.optimizer = optimizer
        self.steps = steps
        assert steps > 0, "requires >= 1 step(s) to forward and update"
        self.episodic = episodic
        self.filter_K = filter_K

        warmup_supports = classifier_weight.data.detach()
        self.num_classes = warmup_supports.size()[0] if num_classes is None else num_classes
        self.warmup_supports = warmup_supports
        warmup_prob = self.classifier(self.warmup_supports)

        self.warmup_ent = softmax_entropy(warmup_prob)
        self.warmup_labels = F.one_hot(warmup_prob.argmax(1), num_classes=self.num_classes).float()
        self.warmup_scores = F.softmax(warmup_prob, 1)

        self.supports = self.warmup_supports.data
        self.labels = self.warmup_labels.data
        self.ent = self.warmup_ent.data
        self.scores = self.warmup_scores.data
        self.lam = lam

    def forward(self, x):
        z = self.featurizer(x)
        p = self.classifier(z)

        yhat = F.one_hot(p.argmax(1), num_classes=self.num_classes).float()
        ent = softmax_entropy(p)
        scores = F.softmax(p, 1)

        with torch.no_grad():
            self.supports = self.supports.to(z.device)
            self.labels = self.labels.to(z.device)
            self.ent = self.ent.to(z.device)
            self.scores = self.scores.to(z.device)
            self.supports = torch.cat([self.supports, z])
            self.labels = torch.cat([self.labels, yhat])
            self.ent = torch.cat([self.ent, ent])
            self.scores = torch.cat([self.scores, scores])

            supports, labels = self.select_supports()
            supports = F.normalize(supports, dim=1)
            weights = supports.T @ (labels)

        dist, loss = self.prototype_loss(z, weights.T, scores, use_hard=False)

        loss_local = topk_cluster(z.detach().clone(), supports, self.scores, p, k=3)
        loss += self.lam * loss_local
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return p

    def select_supports(self):
        ent_s = self.ent
        y_hat = self.labels.argmax(dim=1).long()
        filter_K = self.filter_K
        if filter_K == -1:
            indices = torch.LongTensor(list(range(len(ent_s))))  # noqa: F841 - dead code, as in the seed

        indices = []
        indices1 = torch.LongTensor(list(range(len(ent_s)))).to(ent_s.device)
        for i in range(self.num_classes):
            _, indices2 = torch.sort(ent_s[y_hat == i])
            indices.append(indices1[y_hat == i][indices2][:filter_K])
        indices = torch.cat(indices)

        self.supports = self.supports[indices]
        self.labels = self.labels[indices]
        self.ent = self.ent[indices]
        self.scores = self.scores[indices]

        return self.supports, self.labels

    def prototype_loss(self, z, p, labels=None, use_hard=False, tau=1):
        # z [batch_size,feature_dim]
        # p [num_class,feature_dim]
        # labels [batch_size,]
        z = F.normalize(z, 1)
        p = F.normalize(p, 1)
        dist = z @ p.T / tau
        if labels is None:
            _, labels = dist.max(1)
        if use_hard:
            """use hard label for supervision """
            # _,labels = dist.max(1)  #for prototype-based pseudo-label
            labels = labels.argmax(1)  # for logits-based pseudo-label
            loss = F.cross_entropy(dist, labels)
        else:
            """use soft label for supervision """
            loss = softmax_kl_loss(labels.detach(), dist).sum(1).mean(0)  # detach is **necessary**
            # loss = softmax_kl_loss(dist,labels.detach()).sum(1).mean(0) achieves comparable results
        return dist, loss


def topk_cluster(feature, supports, scores, p, k=3):
    # p: outputs of model batch x num_class
    feature = F.normalize(feature, 1)
    supports = F.normalize(supports, 1)
    sim_matrix = feature @ supports.T  # B,M
    topk_sim_matrix, idx_near = torch.topk(sim_matrix, k, dim=1)  # batch x K
    scores_near = scores[idx_near].detach().clone()  # batch x K x num_class
    diff_scores = torch.sum((p.unsqueeze(1) - scores_near) ** 2, -1)

    loss = -1.0 * topk_sim_matrix * diff_scores
    return loss.mean()


def softmax_kl_loss(input_logits, target_logits):
    """Takes softmax on both sides and returns KL divergence

    Note:
    - Returns the sum over all examples. Divide by the batch size afterwards
      if you want the mean.
    - Sends gradients to inputs but not the targets.
    """
    assert input_logits.size() == target_logits.size()
    input_log_softmax = F.log_softmax(input_logits, dim=1)
    target_softmax = F.softmax(target_logits, dim=1)

    kl_div = F.kl_div(input_log_softmax, target_softmax, reduction="none")
    return kl_div
