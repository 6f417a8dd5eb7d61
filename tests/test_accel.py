"""CUDA speed-ups (issue 15, item 5): AMP only where it agrees with float32, channels-last,
a batch size from a memory probe. The CPU path is the tested one; the CUDA tests are
marked ``gpu`` and skipped without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from protoview.core.accel import (
    FLOAT32,
    Precision,
    amp_candidates,
    batch_size_for_memory,
    channels_last_input,
    choose_precision,
    probe_batch_size,
    use_channels_last,
)
from protoview.core.model import SplitModel
from protoview.errors import ParameterError


def conv_model(seed: int = 0) -> SplitModel:
    torch.manual_seed(seed)
    featurizer = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return SplitModel(featurizer, nn.Linear(8, 5)).eval()


def test_the_cpu_stays_float32_and_contiguous() -> None:
    model = conv_model()
    assert amp_candidates("cpu") == ()
    x = torch.randn(4, 3, 8, 8)
    chosen = choose_precision(model, x, "cpu")
    assert chosen == FLOAT32 and chosen.name == "float32" and chosen.trains
    assert not use_channels_last(model, "cpu")
    assert channels_last_input(x, False) is x
    with FLOAT32.autocast("cpu"):
        assert model(x).dtype == torch.float32


def test_a_reduced_precision_is_kept_only_where_predictions_agree() -> None:
    # CPU autocast in bfloat16 runs the same check the GPU does
    model = conv_model()
    x = torch.randn(64, 3, 8, 8)
    chosen = choose_precision(model, x, "cpu", candidates=(torch.bfloat16,), min_agreement=0.5)
    assert chosen.dtype == torch.bfloat16 and chosen.probe_size == 64
    assert 0.5 <= chosen.agreement <= 1.0 and "bfloat16" in chosen.note and chosen.trains

    # logits 1e-4 apart: bfloat16 cannot tell them apart, so float32 stays
    tied = nn.Linear(2, 2)
    with torch.no_grad():
        tied.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1e-4]]))
        tied.bias.zero_()
    probe = torch.cat([torch.full((32, 1), 3.0), torch.linspace(-1, 1, 32)[:, None]], 1)
    kept = choose_precision(tied, probe, "cpu", candidates=(torch.bfloat16,))
    assert kept.dtype is None and "bfloat16 agreed on" in kept.note
    fp16 = Precision(torch.float16)
    assert not fp16.trains and isinstance(fp16.autocast("cpu", training=True),
                                          type(FLOAT32.autocast("cpu")))


def test_bad_probe_arguments_are_named() -> None:
    with pytest.raises(ParameterError) as info:
        choose_precision(conv_model(), torch.zeros(0, 3, 8, 8), "cpu", candidates=(torch.bfloat16,))
    assert info.value.where == "probe"
    with pytest.raises(ParameterError) as info:
        choose_precision(conv_model(), torch.zeros(2, 3, 8, 8), "cpu", min_agreement=1.5)
    assert info.value.where == "min_agreement"
    with pytest.raises(ParameterError) as info:
        probe_batch_size(conv_model(), torch.zeros(1, 3, 8, 8))
    assert info.value.where == "device"


def test_the_batch_size_fills_the_free_memory_with_headroom() -> None:
    mib = 2**20
    assert batch_size_for_memory(10 * mib, 1000 * mib, headroom=0.5) == 48  # 50, to a multiple of 8
    assert batch_size_for_memory(10 * mib, 1000 * mib, headroom=0.5, multiple=1) == 50
    assert batch_size_for_memory(10 * mib, 1000 * mib, maximum=16) == 16
    assert batch_size_for_memory(10 * mib, 5 * mib) == 1  # never below one
    assert batch_size_for_memory(0, 1000 * mib) == 1 and batch_size_for_memory(1, 0) == 1
    assert batch_size_for_memory(3 * mib, 10 * mib, headroom=1.0) == 3  # below 8: not rounded


# ---- CUDA ------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_precision_channels_last_and_memory_probe() -> None:
    model = conv_model().cuda()
    x = torch.randn(128, 3, 32, 32, device="cuda")
    assert use_channels_last(model, "cuda")
    assert model.featurizer[0].weight.is_contiguous(memory_format=torch.channels_last)
    xc = channels_last_input(x, True)
    chosen = choose_precision(model, xc, "cuda")
    assert chosen.dtype in (torch.bfloat16, torch.float16) and chosen.agreement >= 0.99
    size = probe_batch_size(model, xc[:1])
    assert 1 <= size <= 4096


@pytest.mark.gpu
def test_cuda_run_and_extraction_use_them() -> None:
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from protoview.core.features import extract_features

    data = open_dataset("demo")
    model = load_checkpoint(demo_checkpoint_path("cosine")).cuda()
    run = AdaptRun(make_adapter("tsd", model), data, batch_size=64, seed=0)
    precision = run.accelerate()
    assert precision.probe_size > 0 and precision.note in run.notes
    rec = run.step()
    assert rec.batch_features.shape[0] == 64 and np.isfinite(rec.online_logits).all()
    feats, logits, _ = run.features_all()
    assert np.isfinite(feats).all() and logits.shape == (len(data), 10)
    result = extract_features(model, data, batch_size=None, device="cuda")
    assert any("memory probe" in n for n in result.notes)
    assert any("autocast" in n or "float32" in n for n in result.notes)
