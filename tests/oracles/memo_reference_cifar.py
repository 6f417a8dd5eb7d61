# ruff: noqa
"""MEMO's released CIFAR-10 test-time code as a test oracle.

Repository: github.com/zhangmarvin/memo, commit 228b2908d271c954ef8bf19cf143ede3b2fa8e3e.
Files, verbatim below their markers: ``cifar-10-exps/utils/third_party.py`` (AugMix),
``cifar-10-exps/utils/prepare_dataset.py`` (``NORM``, ``te_transforms``) and
``cifar-10-exps/test_calls/test_adapt.py`` (``marginal_entropy``, the optimiser,
``adapt_single``, ``test_single``, the loop).

Changed to run here, nothing else:
- ``.cuda()`` calls are dropped; the imports between the files are the definitions here;
- test_adapt.py's module-level ``net``, ``args`` and ``optimizer`` are set by ``setup``
  (its parser's defaults: 32 views, lr 0.005, one iteration; the optimiser made once, as
  the script does); its loop over ``teset`` is ``run(arrays)``: the same loop over uint8
  (H, W, 3) arrays (``teset.data[i]``), returning each ``test_single``'s outputs, kept by
  a forward hook on the model (passes without gradients) as the function returns only
  correctness and confidence.
"""

# ---- cifar-10-exps/utils/third_party.py ----
import numpy as np
import torch
import torch.nn as nn

from PIL import ImageOps, Image
from torchvision import transforms


## https://github.com/google-research/augmix

def _augmix_aug(x_orig):
    x_orig = preaugment(x_orig)
    x_processed = preprocess(x_orig)
    w = np.float32(np.random.dirichlet([1.0, 1.0, 1.0]))
    m = np.float32(np.random.beta(1.0, 1.0))

    mix = torch.zeros_like(x_processed)
    for i in range(3):
        x_aug = x_orig.copy()
        for _ in range(np.random.randint(1, 4)):
            x_aug = np.random.choice(augmentations)(x_aug)
        mix += w[i] * preprocess(x_aug)
    mix = m * x_processed + (1 - m) * mix
    return mix

aug = _augmix_aug


def autocontrast(pil_img, level=None):
    return ImageOps.autocontrast(pil_img)

def equalize(pil_img, level=None):
    return ImageOps.equalize(pil_img)

def rotate(pil_img, level):
    degrees = int_parameter(rand_lvl(level), 30)
    if np.random.uniform() > 0.5:
        degrees = -degrees
    return pil_img.rotate(degrees, resample=Image.BILINEAR, fillcolor=128)

def solarize(pil_img, level):
    level = int_parameter(rand_lvl(level), 256)
    return ImageOps.solarize(pil_img, 256 - level)

def shear_x(pil_img, level):
    level = float_parameter(rand_lvl(level), 0.3)
    if np.random.uniform() > 0.5:
        level = -level
    return pil_img.transform((32, 32), Image.AFFINE, (1, level, 0, 0, 1, 0), resample=Image.BILINEAR, fillcolor=128)

def shear_y(pil_img, level):
    level = float_parameter(rand_lvl(level), 0.3)
    if np.random.uniform() > 0.5:
        level = -level
    return pil_img.transform((32, 32), Image.AFFINE, (1, 0, 0, level, 1, 0), resample=Image.BILINEAR, fillcolor=128)

def translate_x(pil_img, level):
    level = int_parameter(rand_lvl(level), 32 / 3)
    if np.random.random() > 0.5:
        level = -level
    return pil_img.transform((32, 32), Image.AFFINE, (1, 0, level, 0, 1, 0), resample=Image.BILINEAR, fillcolor=128)

def translate_y(pil_img, level):
    level = int_parameter(rand_lvl(level), 32 / 3)
    if np.random.random() > 0.5:
        level = -level
    return pil_img.transform((32, 32), Image.AFFINE, (1, 0, 0, 0, 1, level), resample=Image.BILINEAR, fillcolor=128)

def posterize(pil_img, level):
    level = int_parameter(rand_lvl(level), 4)
    return ImageOps.posterize(pil_img, 4 - level)


def int_parameter(level, maxval):
    """Helper function to scale `val` between 0 and maxval .
    Args:
    level: Level of the operation that will be between [0, `PARAMETER_MAX`].
    maxval: Maximum value that the operation can have. This will be scaled
      to level/PARAMETER_MAX.
    Returns:
    An int that results from scaling `maxval` according to `level`.
    """
    return int(level * maxval / 10)

def float_parameter(level, maxval):
    """Helper function to scale `val` between 0 and maxval .
    Args:
    level: Level of the operation that will be between [0, `PARAMETER_MAX`].
    maxval: Maximum value that the operation can have. This will be scaled
      to level/PARAMETER_MAX.
    Returns:
    A float that results from scaling `maxval` according to `level`.
    """
    return float(level) * maxval / 10.

def rand_lvl(n):
    return np.random.uniform(low=0.1, high=n)


augmentations = [
    autocontrast,
    equalize,
    lambda x: rotate(x, 1),
    lambda x: solarize(x, 1),
    lambda x: shear_x(x, 1),
    lambda x: shear_y(x, 1),
    lambda x: translate_x(x, 1),
    lambda x: translate_y(x, 1),
    lambda x: posterize(x, 1),
]

mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
preprocess = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize(mean, std)
])
preaugment = transforms.Compose([
    transforms.RandomCrop(32, padding=4),
    transforms.RandomHorizontalFlip(),
])

# ---- cifar-10-exps/utils/prepare_dataset.py (NORM, te_transforms) ----
NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
te_transforms = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(*NORM)])

# ---- cifar-10-exps/test_calls/test_adapt.py ----
def marginal_entropy(outputs):
    logits = outputs - outputs.logsumexp(dim=-1, keepdim=True)
    avg_logits = logits.logsumexp(dim=0) - np.log(logits.shape[0])
    min_real = torch.finfo(avg_logits.dtype).min
    avg_logits = torch.clamp(avg_logits, min=min_real)
    return -(avg_logits * torch.exp(avg_logits)).sum(dim=-1), avg_logits

# optimizer = optim.SGD(net.parameters(), lr=args.lr)  (made in setup)

def adapt_single(image):
    net.eval()
    for iteration in range(args.niter):
        inputs = [aug(image) for _ in range(args.batch_size)]
        inputs = torch.stack(inputs)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss, logits = marginal_entropy(outputs)
        loss.backward()
        optimizer.step()

def test_single(model, image, label):
    model.eval()
    inputs = te_transforms(image).unsqueeze(0)
    with torch.no_grad():
        outputs = model(inputs)
        _, predicted = outputs.max(1)
        confidence = nn.functional.softmax(outputs, dim=1).squeeze()[predicted].item()
    correctness = 1 if predicted.item() == label else 0
    return correctness, confidence


import copy
from types import SimpleNamespace

import torch.optim as optim
from PIL import Image

net = args = optimizer = ckpt = None


def setup(net_, batch_size=32, lr=0.005, niter=1):
    global net, args, optimizer, ckpt
    net = net_
    args = SimpleNamespace(batch_size=batch_size, lr=lr, niter=niter)
    ckpt = {'net': copy.deepcopy(net.state_dict())}
    optimizer = optim.SGD(net.parameters(), lr=args.lr)


def run(arrays, on_adapted=None):
    kept = []
    hook = net.register_forward_hook(
        lambda _m, inputs, out: None if torch.is_grad_enabled() else kept.append(out.detach()))
    try:
        correct = []
        for i in range(len(arrays)):
            net.load_state_dict(ckpt['net'])
            label = 0
            image = Image.fromarray(arrays[i])

            adapt_single(image)
            if on_adapted is not None:
                on_adapted(net)
            correct.append(test_single(net, image, label)[0])
    finally:
        hook.remove()
    return torch.cat(kept)
