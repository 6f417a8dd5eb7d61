# ruff: noqa
"""The toolkit's Tent as a test oracle: its choice on models without BatchNorm (ViT, Swin, ConvNeXt).

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files: ``classification/methods/tent.py``
(``loss_calculation``, ``forward_and_adapt``, ``collect_params``, ``configure_model``,
verbatim), ``classification/methods/base.py`` (``setup_optimizer`` for ``OPTIM.METHOD =
'Adam'``: ``Adam(params, lr, betas=(OPTIM.BETA, 0.999), weight_decay=OPTIM.WD)``, defaults
``BETA`` 0.9, ``WD`` 0), ``classification/utils/losses.py`` (``Entropy``).

Changed to run here, nothing else: ``TTAMethod``'s constructor reduced to what Tent uses
(configure, collect, optimiser; no episodic reset, no sliding window, no mixed precision:
the single-precision branch of ``forward_and_adapt`` only).
"""

import torch
import torch.nn as nn


class Entropy(nn.Module):
    def __init__(self):
        super(Entropy, self).__init__()

    def __call__(self, logits):
        return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


class Tent(nn.Module):
    def __init__(self, model, lr=1e-3):
        super().__init__()
        self.model = model
        self.configure_model()
        self.params, param_names = self.collect_params()
        self.param_names = param_names
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
        self.softmax_entropy = Entropy()

    def forward(self, x):
        return self.forward_and_adapt([x])

    def loss_calculation(self, x):
        imgs_test = x[0]
        outputs = self.model(imgs_test)
        loss = self.softmax_entropy(outputs).mean(0)
        return outputs, loss

    @torch.enable_grad()
    def forward_and_adapt(self, x):
        outputs, loss = self.loss_calculation(x)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return outputs

    def collect_params(self):
        params = []
        names = []
        for nm, m in self.model.named_modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                for np, p in m.named_parameters():
                    if np in ['weight', 'bias']:  # weight is scale, bias is shift
                        params.append(p)
                        names.append(f"{nm}.{np}")
        return params, names

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
