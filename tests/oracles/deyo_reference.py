# ruff: noqa
"""DeYO's released code as a test oracle.

Repository: github.com/Jhyun17/DeYO, commit 3d7d2897d864907571ef75edf31f0028d53f1432.
Files: ``methods/deyo.py`` (verbatim below the marker), ``config.py`` (``build``'s defaults:
its ``get_args`` defaults of the DeYO options) and ``main.py`` (``build``: its set-up for
``--method deyo``: ``configure_model``, ``collect_params``, ``SGD(params, args.lr,
momentum=0.9)``, ``DeYO(net, args, optimizer, deyo_margin=..., margin_e0=...)``, the margins
multiplied by ``ln C`` as main.py does).

Changed to run here, nothing else:
- ``from einops import rearrange`` is replaced by the ``rearrange`` below: the four
  patterns deyo.py uses, each written as the equal torch ``view`` / ``permute`` /
  ``reshape`` (pure data movement, so the values are the same bits;
  ``tests/test_deyo.py`` checks it against einops where einops is installed). einops is
  not a protoview dependency;
- ``import matplotlib.pyplot as plt`` (never used) is dropped;
- ``@torch.jit.script`` on ``softmax_entropy`` is applied with torch's deprecation warning
  silenced;
- ``build`` stores ``model_state`` / ``optimizer_state`` on the DeYO module (deep copies, as
  Tent's ``__init__`` that DeYO was built on does): the released ``__init__`` never stores
  them, so its ``reset()`` (``episodic=True``) raises ``AttributeError``; with them it does
  what it means to.
"""

import warnings

import torch


def rearrange(tensor, pattern, **axes):
    """The einops patterns of deyo.py, as torch reshapes."""
    if pattern == 'b c (ps1 h) (ps2 w) -> b (ps1 ps2) c h w':
        p1, p2 = axes['ps1'], axes['ps2']
        b, c, H, W = tensor.shape
        t = tensor.reshape(b, c, p1, H // p1, p2, W // p2).permute(0, 2, 4, 1, 3, 5)
        return t.reshape(b, p1 * p2, c, H // p1, W // p2)
    if pattern == 'b (ps1 ps2) c h w -> b c (ps1 h) (ps2 w)':
        p1, p2 = axes['ps1'], axes['ps2']
        b, _, c, h, w = tensor.shape
        t = tensor.reshape(b, p1, p2, c, h, w).permute(0, 3, 1, 4, 2, 5)
        return t.reshape(b, c, p1 * h, p2 * w)
    if pattern == 'b c h w -> b c (h w)':
        b, c, h, w = tensor.shape
        return tensor.reshape(b, c, h * w)
    if pattern == 'b c (ps1 ps2) -> b c ps1 ps2':
        b, c, n = tensor.shape
        if n != axes['ps1'] * axes['ps2']:
            raise ValueError(f"cannot split {n} into {axes['ps1']} x {axes['ps2']}")
        return tensor.reshape(b, c, axes['ps1'], axes['ps2'])
    raise NotImplementedError(pattern)


_jit_script = torch.jit.script


def _script(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _jit_script(fn)


# ---- methods/deyo.py (from here on verbatim but for the marked import lines) ----
from copy import deepcopy

import torch
import torch.nn as nn
import torch.jit
import torchvision
import math
import numpy as np
# import matplotlib.pyplot as plt  (dropped, unused)
# from einops import rearrange  (replaced above)

torch.jit.script = _script

class DeYO(nn.Module):
    """DeYO online adapts a model by entropy minimization with entropy and PLPD filtering & reweighting during testing.
    Once DeYOed, a model adapts itself by updating on every forward.
    """
    def __init__(self, model, args, optimizer, steps=1, episodic=False, deyo_margin=0.5*math.log(1000), margin_e0=0.4*math.log(1000)):
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.args = args
        if args.wandb_log:
            import wandb
        self.steps = steps
        self.episodic = episodic
        args.counts = [1e-6,1e-6,1e-6,1e-6]
        args.correct_counts = [0,0,0,0]

        self.deyo_margin = deyo_margin
        self.margin_e0 = margin_e0

    def forward(self, x, iter_, targets=None, flag=True, group=None):
        if self.episodic:
            self.reset()
        
        if targets is None:
            for _ in range(self.steps):
                if flag:
                    outputs, backward, final_backward = forward_and_adapt_deyo(x, iter_, self.model, self.args,
                                                                              self.optimizer, self.deyo_margin,
                                                                              self.margin_e0, targets, flag, group)
                else:
                    outputs = forward_and_adapt_deyo(x, iter_, self.model, self.args,
                                                    self.optimizer, self.deyo_margin,
                                                    self.margin_e0, targets, flag, group)
        else:
            for _ in range(self.steps):
                if flag:
                    outputs, backward, final_backward, corr_pl_1, corr_pl_2 = forward_and_adapt_deyo(x, iter_, self.model, 
                                                                                                    self.args, 
                                                                                                    self.optimizer, 
                                                                                                    self.deyo_margin,
                                                                                                    self.margin_e0,
                                                                                                    targets, flag, group)
                else:
                    outputs = forward_and_adapt_deyo(x, iter_, self.model, 
                                                    self.args, self.optimizer, 
                                                    self.deyo_margin,
                                                    self.margin_e0,
                                                    targets, flag, group, self)
        if targets is None:
            if flag:
                return outputs, backward, final_backward
            else:
                return outputs
        else:
            if flag:
                return outputs, backward, final_backward, corr_pl_1, corr_pl_2
            else:
                return outputs

    def reset(self):
        if self.model_state is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved model/optimizer state")
        load_model_and_optimizer(self.model, self.optimizer,
                                 self.model_state, self.optimizer_state)
        self.ema = None


@torch.jit.script
def softmax_entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax distribution from logits."""
    #temprature = 1.1 #0.9 #1.2
    #x = x ** temprature #torch.unsqueeze(temprature, dim=-1)
    return -(x.softmax(1) * x.log_softmax(1)).sum(1)

@torch.enable_grad()  # ensure grads in possible no grad context for testing
def forward_and_adapt_deyo(x, iter_, model, args, optimizer, deyo_margin, margin, targets=None, flag=True, group=None):
    """Forward and adapt model input data.
    Measure entropy of the model prediction, take gradients, and update params.
    """
    outputs = model(x)
    if not flag:
        return outputs
    
    optimizer.zero_grad()
    entropys = softmax_entropy(outputs)
    if args.filter_ent:
        filter_ids_1 = torch.where((entropys < deyo_margin))
    else:    
        filter_ids_1 = torch.where((entropys <= math.log(1000)))
    entropys = entropys[filter_ids_1]
    backward = len(entropys)
    if backward==0:
        if targets is not None:
            return outputs, 0, 0, 0, 0
        return outputs, 0, 0

    x_prime = x[filter_ids_1]
    x_prime = x_prime.detach()
    if args.aug_type=='occ':
        first_mean = x_prime.view(x_prime.shape[0], x_prime.shape[1], -1).mean(dim=2)
        final_mean = first_mean.unsqueeze(-1).unsqueeze(-1)
        occlusion_window = final_mean.expand(-1, -1, args.occlusion_size, args.occlusion_size)
        x_prime[:, :, args.row_start:args.row_start+args.occlusion_size,args.column_start:args.column_start+args.occlusion_size] = occlusion_window
    elif args.aug_type=='patch':
        resize_t = torchvision.transforms.Resize(((x.shape[-1]//args.patch_len)*args.patch_len,(x.shape[-1]//args.patch_len)*args.patch_len))
        resize_o = torchvision.transforms.Resize((x.shape[-1],x.shape[-1]))
        x_prime = resize_t(x_prime)
        x_prime = rearrange(x_prime, 'b c (ps1 h) (ps2 w) -> b (ps1 ps2) c h w', ps1=args.patch_len, ps2=args.patch_len)
        perm_idx = torch.argsort(torch.rand(x_prime.shape[0],x_prime.shape[1]), dim=-1)
        x_prime = x_prime[torch.arange(x_prime.shape[0]).unsqueeze(-1),perm_idx]
        x_prime = rearrange(x_prime, 'b (ps1 ps2) c h w -> b c (ps1 h) (ps2 w)', ps1=args.patch_len, ps2=args.patch_len)
        x_prime = resize_o(x_prime)
    elif args.aug_type=='pixel':
        x_prime = rearrange(x_prime, 'b c h w -> b c (h w)')
        x_prime = x_prime[:,:,torch.randperm(x_prime.shape[-1])]
        x_prime = rearrange(x_prime, 'b c (ps1 ps2) -> b c ps1 ps2', ps1=x.shape[-1], ps2=x.shape[-1])
    with torch.no_grad():
        outputs_prime = model(x_prime)
    
    prob_outputs = outputs[filter_ids_1].softmax(1)
    prob_outputs_prime = outputs_prime.softmax(1)

    cls1 = prob_outputs.argmax(dim=1)

    plpd = torch.gather(prob_outputs, dim=1, index=cls1.reshape(-1,1)) - torch.gather(prob_outputs_prime, dim=1, index=cls1.reshape(-1,1))
    plpd = plpd.reshape(-1)
    
    if args.filter_plpd:
        filter_ids_2 = torch.where(plpd > args.plpd_threshold)
    else:
        filter_ids_2 = torch.where(plpd >= -2.0)
    entropys = entropys[filter_ids_2]
    final_backward = len(entropys)
    
    if targets is not None:
        corr_pl_1 = (targets[filter_ids_1] == prob_outputs.argmax(dim=1)).sum().item()
        
    if final_backward==0:
        del x_prime
        del plpd
        
        if targets is not None:
            return outputs, backward, 0, corr_pl_1, 0
        return outputs, backward, 0
        
    plpd = plpd[filter_ids_2]
    
    if targets is not None:
        corr_pl_2 = (targets[filter_ids_1][filter_ids_2] == prob_outputs[filter_ids_2].argmax(dim=1)).sum().item()

    if args.reweight_ent or args.reweight_plpd:
        coeff = (args.reweight_ent * (1 / (torch.exp(((entropys.clone().detach()) - margin)))) +
                 args.reweight_plpd * (1 / (torch.exp(-1. * plpd.clone().detach())))
                )            
        entropys = entropys.mul(coeff)
    loss = entropys.mean(0)

    if final_backward != 0:
        loss.backward()
        optimizer.step()
    optimizer.zero_grad()

    del x_prime
    del plpd
    
    if targets is not None:
        return outputs, backward, final_backward, corr_pl_1, corr_pl_2
    return outputs, backward, final_backward

def collect_params(model):
    """Collect the affine scale + shift parameters from norm layers.
    Walk the model's modules and collect all normalization parameters.
    Return the parameters and their names.
    Note: other choices of parameterization are possible!
    """
    params = []
    names = []
    for nm, m in model.named_modules():
        # skip top layers for adaptation: layer4 for ResNets and blocks9-11 for Vit-Base
        if 'layer4' in nm:
            continue
        if 'blocks.9' in nm:
            continue
        if 'blocks.10' in nm:
            continue
        if 'blocks.11' in nm:
            continue
        if 'norm.' in nm:
            continue
        if nm in ['norm']:
            continue

        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            for np, p in m.named_parameters():
                if np in ['weight', 'bias']:  # weight is scale, bias is shift
                    params.append(p)
                    names.append(f"{nm}.{np}")

    return params, names


def load_model_and_optimizer(model, optimizer, model_state, optimizer_state):
    """Restore the model and optimizer states from copies."""
    model.load_state_dict(model_state, strict=True)
    optimizer.load_state_dict(optimizer_state)


def configure_model(model):
    """Configure model for use with DeYO."""
    # train mode, because DeYO optimizes the model to minimize entropy
    model.train()
    # disable grad, to (re-)enable only what DeYO updates
    model.requires_grad_(False)
    # configure norm for DeYO updates: enable grad + force batch statisics (this only for BN models)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(True)
            # force use of batch stats in train and eval modes
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
        # LayerNorm and GroupNorm for ResNet-GN and Vit-LN models
        if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
            m.requires_grad_(True)
    return model


torch.jit.script = _jit_script


# ---- main.py / config.py set-up of --method deyo ----
from types import SimpleNamespace


def default_args(num_classes, **changes):
    """config.py's defaults of the options deyo.py reads, margins times ln C as main.py."""
    args = SimpleNamespace(
        wandb_log=0, aug_type='patch', occlusion_size=112, row_start=56, column_start=56,
        patch_len=4, deyo_margin=0.5, deyo_margin_e0=0.4, plpd_threshold=0.2,
        filter_ent=1, filter_plpd=1, reweight_ent=1, reweight_plpd=1,
    )
    for key, value in changes.items():
        setattr(args, key, value)
    args.deyo_margin *= math.log(num_classes)
    args.deyo_margin_e0 *= math.log(num_classes)
    return args


def build(net, num_classes, lr=0.00025, steps=1, episodic=False, **changes):
    args = default_args(num_classes, **changes)
    net = configure_model(net)
    params, param_names = collect_params(net)
    optimizer = torch.optim.SGD(params, lr, momentum=0.9)
    adapt_model = DeYO(net, args, optimizer, steps=steps, episodic=episodic,
                       deyo_margin=args.deyo_margin, margin_e0=args.deyo_margin_e0)
    adapt_model.model_state = deepcopy(net.state_dict())
    adapt_model.optimizer_state = deepcopy(optimizer.state_dict())
    return adapt_model
