# ruff: noqa
"""GTTA (Marsden, Döbler & Yang, 2022, "Gradual test-time adaptation by self-training and
style transfer") as released in its authors' toolkit, as a test oracle.

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files: ``classification/methods/gtta.py`` (its
methods ``forward_and_adapt``, ``mixup_data``, ``create_pseudo_labels``, ``extract_moments``,
``reset`` and ``configure_model`` verbatim; ``__init__`` as below),
``classification/methods/base.py`` (``TTAMethod.__init__`` / ``forward`` / ``collect_params``
/ Adam ``setup_optimizer`` / ``copy_model_and_optimizer`` / ``load_model_and_optimizer`` /
``reset``), ``classification/conf.py`` (``_C.GTTA.*``: ``LAMBDA_MIXUP = 1/3``,
``USE_STYLE_TRANSFER = False``, ``STEPS_ADAIN = 1``, ``PRETRAIN_STEPS_ADAIN = 20000``) and ``cfgs/*/gtta.yaml`` (Adam, lr 1e-5,
beta 0.9, wd 0).

Changed to run here, nothing else:
- the configuration object is replaced by arguments with those defaults;
- ``get_source_loader`` is replaced by the ``src_loader`` argument (a DataLoader of labelled
  source batches of the test batch size, ``shuffle=True`` as the toolkit builds it);
- with ``use_style_transfer`` (GTTA-ST; ``TransferNet`` from
  ``tests/oracles/toolkit_style_transfer.py``, the toolkit's ``models/style_transfer.py``) the
  VGG and decoder files are the arguments ``ckpt_path_vgg`` and ``ckpt_path_dec`` (the
  released lines build them from ``cfg.CKPT_DIR`` and an undefined ``dataset_name``, a
  ``NameError``), and ``PRETRAIN_STEPS_ADAIN`` (20,000) is ``pretrain_steps_adain``;
- ``reset`` creates its moment buffers on ``self.device`` instead of ``"cuda"`` (the
  released line fails on a machine without CUDA);
- no mixed precision, no single-sample sliding window.
"""

import logging
import torch
from tests.oracles.toolkit_style_transfer import TransferNet
import torch.nn as nn
import torch.nn.functional as F
from copy import deepcopy

logger = logging.getLogger(__name__)


class GTTA(nn.Module):
    def __init__(self, model, num_classes, src_loader, lr=1e-5, lambda_mixup=1 / 3, steps=1,
                 episodic=False, steps_adain=1, use_style_transfer=False, ckpt_path_vgg=None,
                 ckpt_path_dec=None, pretrain_steps_adain=20000):
        super().__init__()
        # ---- TTAMethod.__init__ (base.py)
        self.model = model
        self.num_classes = num_classes
        self.episodic = episodic
        self.steps = steps
        assert self.steps > 0, "requires >= 1 step(s) to forward and update"
        self.device = "cpu"
        self.configure_model()
        self.params, param_names = self.collect_params()
        self.param_names = param_names
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
        self.models = [self.model]
        self.model_states, self.optimizer_state = self.copy_model_and_optimizer()
        # ---- GTTA.__init__ (gtta.py)
        self.src_loader = src_loader
        self.src_loader_iter = iter(self.src_loader)
        self.steps_adain = steps_adain
        self.use_style_transfer = use_style_transfer
        self.lam = lambda_mixup
        self.buffer_size = 100000
        self.counter = 0

        self.avg_conf = torch.tensor(0.9).to(self.device)
        self.ignore_label = -1

        # Create style-transfer network
        if self.use_style_transfer:
            fname = ckpt_path_dec
            self.adain_model = TransferNet(ckpt_path_vgg=ckpt_path_vgg,
                                           ckpt_path_dec=fname,
                                           data_loader=self.src_loader,
                                           num_iters_pretrain=pretrain_steps_adain).to(self.device)
            self.moments_list = [[torch.tensor([], device=self.device), torch.tensor([], device=self.device)] for _ in range(2)]
            self.models = [self.model, self.adain_model]
        else:
            self.adain_model = None
            self.moments_list = None
            self.models = [self.model]

        # note: if the self.model is never reset, like for continual adaptation,
        # then skipping the state copy would save memory
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

    def copy_model_and_optimizer(self):
        model_states = [deepcopy(model.state_dict()) for model in self.models]
        optimizer_state = deepcopy(self.optimizer.state_dict())
        return model_states, optimizer_state

    def load_model_and_optimizer(self):
        for model, model_state in zip(self.models, self.model_states):
            model.load_state_dict(model_state, strict=True)
        self.optimizer.load_state_dict(self.optimizer_state)

    def base_reset(self):
        if self.model_states is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved model/optimizer state")
        self.load_model_and_optimizer()

    # ---- GTTA (gtta.py), verbatim
    @torch.enable_grad()  # ensure grads in possible no grad context for testing
    def forward_and_adapt(self, x):
        imgs_test = x[0]

        with torch.no_grad():
            outputs_test = self.model(imgs_test)

        if self.counter == 0:
            self.filtered_pseudos = self.create_pseudo_labels(outputs_test)
            if self.use_style_transfer:
                self.adain_model.train()
                self.extract_moments(imgs_test)

                # Train adain model
                for _ in range(self.steps_adain):
                    # sample source batch
                    try:
                        batch = next(self.src_loader_iter)
                    except StopIteration:
                        self.src_loader_iter = iter(self.src_loader)
                        batch = next(self.src_loader_iter)

                    # train on source data
                    imgs_src = batch[0].to(self.device)

                    self.adain_model.opt_adain_dec.zero_grad()
                    _, loss_content, loss_style = self.adain_model(imgs_src, moments_list=self.moments_list)
                    loss_adain = 1.0 * loss_content + 0.1 * loss_style
                    loss_adain.backward()
                    self.adain_model.opt_adain_dec.step()

        # Train classification model
        with torch.no_grad():
            # sample source batch
            try:
                batch = next(self.src_loader_iter)
            except StopIteration:
                self.src_loader_iter = iter(self.src_loader)
                batch = next(self.src_loader_iter)

            # train on labeled source data
            imgs_src, labels_src = batch[0].to(self.device), batch[1].to(self.device).long()

            if self.use_style_transfer:
                # Generate style transferred images from source images
                imgs_src, _, _ = self.adain_model(imgs_src, moments_list=self.moments_list)
            else:
                # Perform mixup
                batch_size = imgs_test.shape[0]
                imgs_src = imgs_src[:batch_size]
                labels_src = labels_src[:batch_size]
                outputs_src = self.model(imgs_src)
                _, ids = torch.max(torch.matmul(outputs_src.softmax(1), outputs_test.softmax(1).T), dim=1)
                imgs_src = self.mixup_data(imgs_src, imgs_test[ids], lam=self.lam)

        loss_source = F.cross_entropy(input=self.model(imgs_src), target=labels_src)
        loss_source.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

        outputs_test = self.model(imgs_test)
        loss_target = F.cross_entropy(input=outputs_test, target=self.filtered_pseudos, ignore_index=-1)
        loss_target.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

        self.counter += 1
        self.counter %= self.steps
        return outputs_test

    @torch.no_grad()
    def mixup_data(self, x_source, x_target, lam=0.25):
        mixed_x = lam * x_target + (1 - lam) * x_source
        return mixed_x

    @torch.no_grad()
    def create_pseudo_labels(self, outputs_test):
        # Create pseudo-labels
        confidences, pseudo_labels = torch.max(outputs_test.softmax(dim=1), dim=1)

        momentum = 0.9
        self.avg_conf = momentum * self.avg_conf + (1 - momentum) * confidences.mean()
        mask = torch.where(confidences < torch.sqrt(self.avg_conf))

        filtered_pseudos = pseudo_labels.clone()
        filtered_pseudos[mask] = self.ignore_label

        return filtered_pseudos

    @torch.no_grad()
    def extract_moments(self, x):
        # Extract image-wise moments from current test batch
        adain_moments = self.adain_model(x)

        # Save moments in a buffer list
        for i_adain_layer, (means, stds) in enumerate(adain_moments):  # Iterate through the adain layers
            self.moments_list[i_adain_layer][0] = torch.cat([self.moments_list[i_adain_layer][0], means], dim=0)
            self.moments_list[i_adain_layer][1] = torch.cat([self.moments_list[i_adain_layer][1], stds], dim=0)
            moments_size = len(self.moments_list[i_adain_layer][0])
            if moments_size > self.buffer_size:
                self.moments_list[i_adain_layer][0] = self.moments_list[i_adain_layer][0][moments_size - self.buffer_size:]
                self.moments_list[i_adain_layer][1] = self.moments_list[i_adain_layer][1][moments_size - self.buffer_size:]

    def reset(self):
        self.base_reset()  # super().reset()
        self.moments_list = [[torch.tensor([], device=self.device), torch.tensor([], device=self.device)] for _ in range(2)]

    def configure_model(self):
        """Configure model."""
        self.model.train()
        # disable grad, to (re-)enable only what we update
        self.model.requires_grad_(False)
        # enable all trainable
        for m in self.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.requires_grad_(True)
                # force use of batch stats in train and eval modes
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
            else:
                m.requires_grad_(True)
