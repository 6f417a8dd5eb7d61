# ruff: noqa
"""SANTA (Chakrabarty, Sreenivas & Biswas, TMLR 2023, "SANTA: source anchoring network and
target alignment for continual test time adaptation") as released in the toolkit, as a test oracle.

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files: ``classification/methods/santa.py`` (its
methods ``contrastive_loss``, ``loss_calculation``, ``forward_and_adapt`` and
``configure_model`` verbatim; ``__init__`` as below), ``classification/methods/base.py``
(``TTAMethod``: ``forward``, ``collect_params``, Adam ``setup_optimizer``, reset),
``classification/utils/losses.py`` (``AugCrossEntropy``), ``augmentations/transforms_cotta.py``
(``tests/oracles/toolkit_transforms_cotta.py``).

Changed to run here, nothing else: the configuration object is replaced by arguments with the
toolkit's defaults (``SANTA.*``, ``CONTRAST.*``, ``OPTIM`` Adam lr 1e-3); ``get_source_loader``
by the ``src_loader`` argument (labelled source batches, ``shuffle=True``) and
``split_up_model`` by the split model's ``featurizer`` / ``classifier``; the prototypes are
computed every time (no cache file); the DomainNet-126 branches are dropped; no mixed
precision, no single-sample sliding window.
"""

import logging
import torch
import torch.nn as nn
import torch.nn.functional as F
from copy import deepcopy

from tests.oracles.toolkit_transforms_cotta import get_tta_transforms

logger = logging.getLogger(__name__)


class AugCrossEntropy(nn.Module):
    def __init__(self, alpha=0.5):
        super(AugCrossEntropy, self).__init__()
        self.alpha = alpha

    def __call__(self, x, x_aug, x_ema):
        return -(1-self.alpha) * (x.softmax(1) * x_ema.log_softmax(1)).sum(1) \
                  - self.alpha * (x_aug.softmax(1) * x_ema.log_softmax(1)).sum(1)


class SANTA(nn.Module):
    def __init__(self, model, num_classes, src_loader, img_size, lr=1e-3, lambda_ce_trg=1.0,
                 lambda_cont=1.0, temperature=0.1, projection_dim=128, contrast_mode="all",
                 steps=1, episodic=False):
        super().__init__()
        # ---- TTAMethod.__init__ (base.py)
        self.model = model
        self.num_classes = num_classes
        self.episodic = episodic
        self.steps = steps
        self.device = "cpu"
        self.img_size = img_size
        self.configure_model()
        self.params, param_names = self.collect_params()
        self.param_names = param_names
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
        # ---- SANTA.__init__ (santa.py)
        self.src_loader = src_loader
        self.contrast_mode = contrast_mode
        self.temperature = temperature
        self.base_temperature = self.temperature
        self.projection_dim = projection_dim
        self.lambda_ce_trg = lambda_ce_trg
        self.lambda_cont = lambda_cont
        self.final_lr = lr

        self.tta_transform = get_tta_transforms(self.img_size)

        # setup loss functions
        self.aug_entropy = AugCrossEntropy()

        # Setup Anchor model
        self.anchor_model = deepcopy(self.model)
        for param in self.anchor_model.parameters():
            param.detach_()

        # split up the model
        self.feature_extractor, self.classifier = self.model.featurizer, self.model.classifier

        features_src = torch.tensor([])
        labels_src = torch.tensor([])
        with torch.no_grad():
            for data in self.src_loader:
                x, y = data[0], data[1]
                tmp_features = self.feature_extractor(x.to(self.device))
                features_src = torch.cat([features_src, tmp_features.view(tmp_features.shape[:2]).cpu()], dim=0)
                labels_src = torch.cat([labels_src, y], dim=0)
                if len(features_src) > 100000:
                    break

        # create class-wise source prototypes
        self.prototypes_src = torch.tensor([])
        for i in range(self.num_classes):
            mask = labels_src == i
            self.prototypes_src = torch.cat([self.prototypes_src, features_src[mask].mean(dim=0, keepdim=True)], dim=0)

        self.prototypes_src = self.prototypes_src.to(self.device).unsqueeze(1)
        self.prototype_labels_src = torch.arange(start=0, end=self.num_classes, step=1).to(self.device).long()

        # setup projector
        num_channels = self.prototypes_src.shape[-1]
        self.projector = nn.Sequential(nn.Linear(num_channels, self.projection_dim), nn.ReLU(),
                                       nn.Linear(self.projection_dim, self.projection_dim)).to(self.device)
        self.optimizer.add_param_group({'params': self.projector.parameters(), 'lr': self.optimizer.param_groups[0]["lr"]})

        self.models = [self.model, self.anchor_model, self.projector]
        self.model_states, self.optimizer_state = self.copy_model_and_optimizer()

    # ---- TTAMethod (base.py)
    def forward(self, x):
        if self.episodic:
            self.reset()

        x = x if isinstance(x, list) else [x]
        for _ in range(self.steps):
            outputs = self.forward_and_adapt(x)
        return outputs

    def collect_params(self):
        params = []
        names = []
        for nm, m in self.model.named_modules():
            for np, p in m.named_parameters():
                if np in ['weight', 'bias'] and p.requires_grad:
                    params.append(p)
                    names.append(f"{nm}.{np}")
        return params, names

    def reset(self):
        if self.model_states is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved model/optimizer state")
        self.load_model_and_optimizer()

    def copy_model_and_optimizer(self):
        model_states = [deepcopy(model.state_dict()) for model in self.models]
        optimizer_state = deepcopy(self.optimizer.state_dict())
        return model_states, optimizer_state

    def load_model_and_optimizer(self):
        for model, model_state in zip(self.models, self.model_states):
            model.load_state_dict(model_state, strict=True)
        self.optimizer.load_state_dict(self.optimizer_state)

    # ---- SANTA (santa.py), verbatim
    # Integrated from: https://github.com/HobbitLong/SupContrast/blob/master/losses.py
    def contrastive_loss(self, features, labels=None, mask=None):
        batch_size = features.shape[0]
        if labels is not None and mask is not None:
            raise ValueError('Cannot define both `labels` and `mask`')
        elif labels is None and mask is None:
            mask = torch.eye(batch_size, dtype=torch.float32).to(self.device)
        elif labels is not None:
            labels = labels.contiguous().view(-1, 1)
            if labels.shape[0] != batch_size:
                raise ValueError('Num of labels does not match num of features')
            mask = torch.eq(labels, labels.T).float().to(self.device)
        else:
            mask = mask.float().to(self.device)

        contrast_count = features.shape[1]
        contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
        contrast_feature = self.projector(contrast_feature)
        contrast_feature = F.normalize(contrast_feature, p=2, dim=1)
        if self.contrast_mode == 'one':
            anchor_feature = features[:, 0]
            anchor_count = 1
        elif self.contrast_mode == 'all':
            anchor_feature = contrast_feature
            anchor_count = contrast_count
        else:
            raise ValueError('Unknown mode: {}'.format(self.contrast_mode))

        # compute logits
        anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), self.temperature)
        # for numerical stability
        logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
        logits = anchor_dot_contrast - logits_max.detach()

        # tile mask
        mask = mask.repeat(anchor_count, contrast_count)
        # mask-out self-contrast cases
        logits_mask = torch.scatter(
            torch.ones_like(mask),
            1,
            torch.arange(batch_size * anchor_count).view(-1, 1).to(self.device),
            0
        )
        mask = mask * logits_mask

        # compute log_prob
        exp_logits = torch.exp(logits) * logits_mask
        log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))

        # compute mean of log-likelihood over positive
        mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)

        # loss
        loss = - (self.temperature / self.base_temperature) * mean_log_prob_pos
        loss = loss.view(anchor_count, batch_size).mean()
        return loss

    def loss_calculation(self, x):
        imgs_test = x[0]

        # forward original test data
        features_test = self.feature_extractor(imgs_test)
        outputs_test = self.classifier(features_test)

        # forward augmented test data
        features_aug_test = self.feature_extractor(self.tta_transform(imgs_test))
        outputs_aug_test = self.classifier(features_aug_test)

        # forward original test data through the anchor model
        outputs_anchor = self.anchor_model(imgs_test)

        with torch.no_grad():
            # dist[:, i] contains the distance from every source sample to one test sample
            dist = F.cosine_similarity(
                x1=self.prototypes_src.repeat(1, features_test.shape[0], 1),
                x2=features_test.view(1, features_test.shape[0], features_test.shape[1]).repeat(self.prototypes_src.shape[0], 1, 1),
                dim=-1)

            # for every test feature, get the nearest source prototype and derive the label
            _, indices = dist.topk(1, largest=True, dim=0)
            indices = indices.squeeze(0)

        features = torch.cat([self.prototypes_src[indices],
                              features_test.view(features_test.shape[0], 1, features_test.shape[1]),
                              features_aug_test.view(features_test.shape[0], 1, features_test.shape[1])], dim=1)
        loss_contrastive = self.contrastive_loss(features=features, labels=None)

        loss_self_training = self.aug_entropy(outputs_test, outputs_aug_test, outputs_anchor).mean(0)
        loss = self.lambda_ce_trg * loss_self_training + self.lambda_cont * loss_contrastive
        
        return outputs_test, loss
        
    @torch.enable_grad()
    def forward_and_adapt(self, x):
        if True:
            outputs, loss = self.loss_calculation(x)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
        return outputs

    def configure_model(self):
        """Configure model for use with tent."""
        # train mode, because tent optimizes the model to minimize entropy
        # self.model.train()
        self.model.eval()  # eval mode to avoid stochastic depth in swin. test-time normalization is still applied
        # disable grad, to (re-)enable only what tent updates
        self.model.requires_grad_(False)
        # configure norm for tent updates: enable grad + force batch statisics
        for m in self.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.requires_grad_(True)
                # force use of batch stats in train and eval modes
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
            elif isinstance(m, nn.BatchNorm1d):
                m.train()   # always forcing train mode in bn1d will cause problems for single sample tta
                m.requires_grad_(True)
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                m.requires_grad_(True)
