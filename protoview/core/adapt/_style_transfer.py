"""GTTA's style-transfer network: AdaIN on a VGG-19 encoder with a trained decoder.

The toolkit's ``classification/models/style_transfer.py`` (github.com/mariodoebler/
test-time-adaptation, commit 8b2ed63; adapted there from Maggiking/AdaIN-Style-Transfer-PyTorch;
oracle: ``tests/oracles/toolkit_style_transfer.py``): the layers, the AdaIN, the forward
pass, the losses and the decoder's pre-training as released, on the model's device where the
release has ``.cuda()`` / ``"cuda"``. The encoder is AdaIN's ``vgg_normalised.pth`` up to
relu4_1, frozen; its file is the ``state_dict`` of the full ``vggnet`` below (keys ``0.weight``
... ``35.bias``), as the toolkit's ``torch.load(ckpt_path_vgg)`` / ``vggnet.load_state_dict``
reads it, or the ``vgg_normalised.pth`` of naoto0804/pytorch-AdaIN (keys ``0.weight`` ...
``51.bias``: the same 17 convolutions with their reflection padding as separate layers),
whose convolutions are taken in order (the same numbers: a reflection pad then a
convolution is a convolution with ``padding_mode="reflect"``). Images go in and come out as
pixels in [0, 1] (the decoder ends in a sigmoid).

Differences, none changing a number: the networks are built per adapter (the toolkit's are
module-level objects, shared by every ``TransferNet`` of a process); the VGG is built without
drawing random initial weights it would overwrite (so a seeded run draws only the decoder's);
the pre-training's progress is not logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from protoview.errors import ParameterError

#: The toolkit's cap on the samples whose moments the decoder's pre-training collects.
PRETRAIN_MOMENT_SAMPLES = 100_000


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1),
                     padding_mode="reflect")  # fmt: skip


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)


def _encoder_layers() -> list[nn.Module]:
    """``encoder``: vggnet[:22], up to relu4_1 (indices 0-21)."""
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    return [
        nn.Conv2d(3, 3, kernel_size=(1, 1), stride=(1, 1)), _conv(3, 64), relu(),
        _conv(64, 64), relu(), _pool(),
        _conv(64, 128), relu(), _conv(128, 128), relu(), _pool(),
        _conv(128, 256), relu(), _conv(256, 256), relu(), _conv(256, 256), relu(),
        _conv(256, 256), relu(), _pool(),
        _conv(256, 512), relu(),
    ]  # fmt: skip


def build_vgg() -> nn.Sequential:
    """The toolkit's ``vggnet`` (the layout of ``vgg_normalised.pth``)."""
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    rest = [_conv(512, 512), relu(), _conv(512, 512), relu(), _conv(512, 512), relu(), _pool(),
            _conv(512, 512), relu(), _conv(512, 512), relu(), _conv(512, 512), relu(),
            _conv(512, 512), relu()]  # fmt: skip
    return nn.Sequential(*_encoder_layers(), *rest)


def build_encoder() -> nn.Sequential:
    return nn.Sequential(*_encoder_layers())


def build_decoder() -> nn.Sequential:
    """The toolkit's ``decoder`` (random initial weights from torch's global generator)."""
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
    return nn.Sequential(
        _conv(512, 256), relu(),
        up(), _conv(256, 256), relu(), _conv(256, 256), relu(), _conv(256, 256), relu(),
        _conv(256, 128), relu(),
        up(), _conv(128, 128), relu(), _conv(128, 64), relu(),
        up(), _conv(64, 64), relu(), _conv(64, 3), nn.Sigmoid(),
    )  # fmt: skip


def load_encoder(path: str, where: str) -> nn.Sequential:
    """The frozen encoder from AdaIN's ``vgg_normalised.pth`` at ``path`` (on the CPU).

    Raises :class:`ParameterError` (``where``) when the file is missing, unreadable or not
    the ``state_dict`` of :func:`build_vgg`.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ParameterError(where, f"{file}: no such file (the VGG-19 encoder weights of "
                                    "AdaIN, vgg_normalised.pth)")  # fmt: skip
    what = ("is not the state_dict of AdaIN's VGG-19 (the toolkit's vggnet, keys 0.weight ... "
            "35.bias, or pytorch-AdaIN's vgg_normalised.pth, 0.weight ... 51.bias)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        problem = (f"{file}: cannot be read by torch.load as weights ({type(exc).__name__}: "
                   "not a file torch.save wrote, or it holds more than tensors)")
        raise ParameterError(where, problem) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ParameterError(where, f"{file} {what}")
    with torch.device("meta"):
        vgg = build_vgg()
    expected = vgg.state_dict()
    state = _in_vgg_keys(state, expected)
    problem = _layout_problem(state, expected)
    if problem:
        raise ParameterError(where, f"{file} {what}: {problem}")
    vgg.load_state_dict(state, strict=True, assign=True)
    with torch.device("meta"):
        encoder = build_encoder()
    encoder.load_state_dict(
        {k: v.float() for k, v in vgg[:21].state_dict().items()}, strict=True, assign=True
    )
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    return encoder


def _in_vgg_keys(state: dict[str, Any], expected: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``state`` under :func:`build_vgg`'s keys when it holds the same layers under other
    indices (pytorch-AdaIN's layout: layer ``k`` of it is layer ``k`` of ours when both are
    counted over the layers with weights); else ``state`` unchanged."""
    if set(state) == set(expected):
        return state

    def layers(keys: Any) -> list[str]:
        found = {key.partition(".")[0] for key in keys}
        return sorted(found, key=lambda i: int(i) if i.isdigit() else -1)

    theirs, ours = layers(state), layers(expected)
    if len(theirs) != len(ours):
        return state
    renamed = {}
    for old, new in zip(theirs, ours, strict=True):
        for name in ("weight", "bias"):
            value, want = state.get(f"{old}.{name}"), expected[f"{new}.{name}"]
            if not isinstance(value, torch.Tensor) or value.shape != want.shape:
                return state
            renamed[f"{new}.{name}"] = value
    return renamed if len(renamed) == len(state) else state


def _layout_problem(state: dict[str, Any], expected: dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading into a module whose state is ``expected`` ("": nothing)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        said = []
        if missing:
            said.append(f"{len(missing)} keys missing ({', '.join(missing[:3])}...)")
        if unexpected:
            said.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}...)")
        return "; ".join(said)
    for key, want in expected.items():
        if state[key].shape != want.shape:
            return f"{key} has shape {tuple(state[key].shape)}, expected {tuple(want.shape)}"
    return ""


def check_images(x: torch.Tensor) -> None:
    """Refuse (``where="style_transfer"``) a batch the encoder and decoder cannot take: RGB
    (N, 3, H, W) with H and W multiples of 8 (the encoder pools three times, the decoder
    upsamples three times and adds the first layer's features back)."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 8 or x.shape[3] % 8:
        raise ParameterError(
            "style_transfer", "the style transfer takes RGB images (N, 3, H, W) with H and W "
            f"multiples of 8 (its VGG encoder pools three times), got a batch {tuple(x.shape)}")


def load_decoder(decoder: nn.Sequential, path: str, device: torch.device, where: str) -> None:
    """Put the decoder saved at ``path`` (``{"decoder": state_dict}``, as the toolkit saves
    it) into ``decoder``. Raises :class:`ParameterError` (``where``) when it is not one."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        decoder.load_state_dict(saved["decoder"])
    except Exception as exc:  # noqa: BLE001 - unreadable, no "decoder" key, wrong layout
        raise ParameterError(where, f"{path} is not a decoder saved by GTTA's style transfer "
                                    f"({{'decoder': state_dict}}): {_first_line(exc)}") from exc


def save_decoder(decoder: nn.Sequential, path: str) -> None:
    """Save ``decoder`` at ``path`` as the toolkit does (``{"decoder": state_dict}``)."""
    torch.save({"decoder": decoder.state_dict()}, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


class AdaIN(nn.Module):
    """The toolkit's ``AdaIN``: content features re-normalised to style moments."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(
        self, x_content: torch.Tensor, moments_list: list[torch.Tensor], pretrain: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        means_style, stds_style = moments_list[0], moments_list[1]
        means_content = torch.mean(x_content, dim=[2, 3], keepdim=True)
        stds_content = torch.std(x_content, dim=[2, 3], keepdim=True) + self.eps
        # pre-training: random source styles; adapting: the last N in the buffer, newest first
        if pretrain:
            chosen = torch.randint(means_style.shape[0], size=x_content.shape[:1])
        else:
            chosen = -1 * torch.arange(1, x_content.shape[0] + 1)
        means_style = means_style[chosen].unsqueeze(-1).unsqueeze(-1)
        stds_style = stds_style[chosen].unsqueeze(-1).unsqueeze(-1) + self.eps
        adain_out = (x_content - means_content) / stds_content * stds_style + means_style
        return adain_out, means_style.squeeze(), stds_style.squeeze()


Moments = list[list[torch.Tensor]]


def empty_moments(device: torch.device) -> Moments:
    """Two AdaIN layers' (means, stds) buffers, empty."""
    return [[torch.tensor([], device=device), torch.tensor([], device=device)] for _ in range(2)]


def append_moments(moments: Moments, new: Any, cap: int | None = None) -> Moments:
    """``moments`` with each layer's ``(means, stds)`` of ``new`` appended, the newest ``cap``
    kept (None: all); the toolkit's buffer update. Tensors are replaced, never changed in
    place (a snapshot may share them)."""
    out = []
    for (means, stds), (new_means, new_stds) in zip(moments, new, strict=True):
        means, stds = torch.cat([means, new_means], dim=0), torch.cat([stds, new_stds], dim=0)
        if cap is not None and len(means) > cap:
            means, stds = means[len(means) - cap:], stds[len(stds) - cap:]
        out.append([means, stds])
    return out


class TransferNet(nn.Module):
    """The toolkit's ``TransferNet``: frozen encoder, trainable decoder, AdaIN at relu1_2 (a
    skip connection) and relu4_1. Pixels (N, 3, H, W) in [0, 1], H and W multiples of 8."""

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential) -> None:
        super().__init__()
        self.mse_criterion = nn.MSELoss()
        self.encoder, self.decoder, self.adain = encoder, decoder, AdaIN()

    def new_optimizer(self) -> torch.optim.Optimizer:
        """The decoder's Adam (lr 1e-4), as the toolkit builds ``opt_adain_dec``."""
        return torch.optim.Adam(self.decoder.parameters(), lr=1e-4)

    @staticmethod
    def _calculate_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.mean(x, dim=[2, 3]), torch.std(x, dim=[2, 3])

    def forward(self, images: torch.Tensor, moments_list: Moments | None = None,
                pretrain: bool = False) -> Any:  # fmt: skip
        """Without ``moments_list``: the images' moments at both layers; with it: the
        style-transferred images (and in train mode the content and style losses)."""
        fm11_enc = self.encoder[:5](images)
        out_encoder = self.encoder[5:](fm11_enc)
        if moments_list is None:
            return [self._calculate_moments(fm11_enc), self._calculate_moments(out_encoder)]
        out_encoder, means_style_enc, stds_style_enc = self.adain(
            out_encoder, moments_list=moments_list[1], pretrain=pretrain)
        fm11_dec = self.decoder[:17](out_encoder)
        fm11_enc, means_style_11, stds_style_11 = self.adain(
            fm11_enc, moments_list=moments_list[0], pretrain=pretrain)
        fm11_dec = torch.add(fm11_dec, fm11_enc)
        gen_img = self.decoder[17:](fm11_dec)
        if not self.training:
            return gen_img
        fm11_gen = self.encoder[:5](gen_img)
        encode_gen = self.encoder[5:](fm11_gen)
        means_gen_11, stds_gen_11 = self._calculate_moments(fm11_gen)
        means_gen_enc, stds_gen_enc = self._calculate_moments(encode_gen)
        mse = self.mse_criterion
        loss_content = mse(encode_gen, out_encoder)
        loss_style = (
            mse(means_gen_11, means_style_11) + mse(means_gen_enc, means_style_enc)
            + mse(stds_gen_11, stds_style_11) + mse(stds_gen_enc, stds_style_enc)
        )  # fmt: skip
        return gen_img, loss_content, loss_style

    def pretrain(self, loader: Any, data_iter: Any, num_iters: int, pixels: Any,
                 device: torch.device) -> None:  # fmt: skip
        """The toolkit's ``pretrain_adain``: the moments of up to 100,000 source samples (one
        pass of ``loader``), then ``num_iters`` Adam steps of the decoder on source batches
        from ``data_iter`` (``loader`` restarted when it ends), each image given a random
        source sample's style. ``pixels`` maps the loader's batches to pixels."""
        optimizer = self.new_optimizer()
        moments = empty_moments(device)
        n_samples = 0
        with torch.no_grad():
            for images, _ in loader:
                n_samples += images.shape[0]
                images = pixels.to_pixels(images.to(device, torch.float32))
                check_images(images)
                out = self.forward(images)
                moments = append_moments(moments, out)
                if n_samples >= PRETRAIN_MOMENT_SAMPLES:
                    break
        self.train()
        for _ in range(num_iters):
            try:  # the toolkit's iterator, taken before the moments' pass
                images, _ = next(data_iter)
            except StopIteration:
                data_iter = iter(loader)
                images, _ = next(data_iter)
            optimizer.zero_grad()
            _, loss_content, loss_style = self.forward(
                pixels.to_pixels(images.to(device, torch.float32)), moments_list=moments,
                pretrain=True)
            loss = loss_content + 0.1 * loss_style
            loss.backward()
            optimizer.step()
