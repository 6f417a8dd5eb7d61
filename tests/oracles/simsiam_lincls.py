# ruff: noqa
"""SimSiam's linear classification (``main_lincls.py``), as a test oracle for the probe.

Ported from https://github.com/facebookresearch/simsiam at commit
a7bc1772896d0dad0806c51f0bb6f3b16d290468, main_lincls.py: the fc initialisation and
optimizer of ``main_worker`` (lines 155-161, 190, 220-229), ``adjust_learning_rate``
(lines 491-495), the epoch loop of ``main_worker`` and the step of ``train`` (lines 342-366).

Changed to run here, nothing else:
- the model is the ``fc`` alone on frozen features (``model(images)`` of the frozen,
  eval-mode network = ``fc(features)``; no augmentation, as the probe under test);
- the initialisation's ``normal_`` and the DataLoader's shuffling take one ``generator``
  (the script uses the global RNG); the DataLoader is over a TensorDataset of features;
- ``.cuda()``, DataParallel / DDP, LARS, meters, printing, checkpoints and validation dropped.
"""
import math

import torch
import torch.nn as nn


def adjust_learning_rate(optimizer, init_lr, epoch, args):
    """Decay the learning rate based on schedule"""
    cur_lr = init_lr * 0.5 * (1. + math.cos(math.pi * epoch / args.epochs))
    for param_group in optimizer.param_groups:
        param_group['lr'] = cur_lr


def train(train_loader, model, criterion, optimizer, epoch, args):
    model.eval()
    for i, (images, target) in enumerate(train_loader):
        # compute output
        output = model(images)
        loss = criterion(output, target)

        # compute gradient and do SGD step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main_lincls(features, labels, num_classes, args, seed):
    generator = torch.Generator().manual_seed(seed)
    fc = nn.Linear(features.shape[1], num_classes)
    # init the fc layer
    fc.weight.data.normal_(mean=0.0, std=0.01, generator=generator)
    fc.bias.data.zero_()
    # infer learning rate before changing batch size
    init_lr = args.lr * args.batch_size / 256
    criterion = nn.CrossEntropyLoss()
    parameters = list(filter(lambda p: p.requires_grad, fc.parameters()))
    assert len(parameters) == 2  # fc.weight, fc.bias
    optimizer = torch.optim.SGD(parameters, init_lr,
                                momentum=args.momentum,
                                weight_decay=args.weight_decay)
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(features, labels), batch_size=args.batch_size,
        shuffle=True, generator=generator)
    for epoch in range(args.start_epoch, args.epochs):
        adjust_learning_rate(optimizer, init_lr, epoch, args)
        # train for one epoch
        train(train_loader, fc, criterion, optimizer, epoch, args)
    return fc
