"""Semantic segmentation models: one base class and the registered architectures.

:class:`SegmentationModel` owns ``forward`` (with the input-shape check), ``predict``
(padding and cropping under :func:`torch.inference_mode`) and ``config``. Encoder, decoder
and head stay separate sub-modules named ``encoder``, ``decoder`` and
``segmentation_head``, so state-dict keys match those of segmentation_models_pytorch
(``encoder.*`` and so on) and SMP checkpoints load directly.

Registered architectures (all wrap segmentation_models_pytorch 0.6):

============== ================ ======== ==============================================
name           default encoder  divisor  notes
============== ================ ======== ==============================================
unet           mobilenet_v2     32       SMP itself accepts any size; we require 32
fpn            mobilenet_v2     32       other sizes crash inside the decoder
deeplabv3plus  mobilenet_v2     16       encoder output stride 16 (dilated last stage);
                                         training needs batch >= 2 (BatchNorm after
                                         global pooling in ASPP)
segformer      mit_b0           32       output is H/4 upsampled x4
============== ================ ======== ==============================================
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.core.errors import ShapeError
from pixelwise.models.registry import register_model

__all__ = [
    "SegmentationModel",
    "pad_to_divisor",
    "padded_size",
    "to_channels_last",
]

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def padded_size(height: int, width: int, divisor: int) -> tuple[int, int]:
    """Smallest ``(height, width)`` at least as large as the input and divisible by ``divisor``."""
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    return (-(-height // divisor) * divisor, -(-width // divisor) * divisor)


def pad_to_divisor(
    x: torch.Tensor,
    divisor: int,
    mode: str = "constant",
    value: float = 0.0,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two axes (bottom and right) so both are divisible by ``divisor``.

    Args:
        x: tensor ``(..., H, W)`` of any dtype (usually ``(B, C, H, W)`` float32).
        divisor: required multiple, e.g. ``model.required_divisor``.
        mode: ``"constant"`` (fill with ``value``), ``"reflect"``, ``"replicate"`` or
            ``"circular"``. ``"reflect"`` falls back to ``"replicate"`` when the padding
            is not smaller than the axis it pads (a PyTorch limit).
        value: fill value for ``"constant"``.

    Returns:
        ``(padded, (pad_h, pad_w))``: the padded tensor ``(..., H + pad_h, W + pad_w)``,
        same dtype and device, and the number of rows and columns added at the bottom
        and right. Crop back with ``y[..., :H, :W]``.

    Raises:
        ShapeError: ``x`` has fewer than 2 axes.
        ValueError: unknown ``mode`` or ``divisor < 1``.

    Example:
        >>> import torch
        >>> padded, (ph, pw) = pad_to_divisor(torch.rand(1, 3, 100, 120), 32)
        >>> tuple(padded.shape), ph, pw
        ((1, 3, 128, 128), 28, 8)
    """
    if x.ndim < 2:
        raise ShapeError(f"expected a tensor (..., H, W), got shape {tuple(x.shape)}")
    if mode not in _PAD_MODES:
        raise ValueError(f"unknown pad mode {mode!r}; valid modes: {', '.join(_PAD_MODES)}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    new_h, new_w = padded_size(height, width, divisor)
    pad_h, pad_w = new_h - height, new_w - width
    if pad_h == 0 and pad_w == 0:
        return x, (0, 0)
    if mode == "constant":
        return F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=value), (pad_h, pad_w)
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "replicate"
    # Non-constant modes need (N, H, W) or (N, C, H, W); fold leading axes into N.
    lead = x.shape[:-2]
    flat = x.reshape(-1, height, width)
    if not flat.is_floating_point():
        # replicate/reflect are not implemented for integer tensors on every backend.
        padded = F.pad(flat.double(), (0, pad_w, 0, pad_h), mode=mode).to(x.dtype)
    else:
        padded = F.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return padded.reshape(*lead, new_h, new_w), (pad_h, pad_w)


def _is_tracing() -> bool:
    """True inside TorchScript, torch.jit.trace, torch.compile / torch.export or ONNX export."""
    return bool(
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


class SegmentationModel(nn.Module):
    """Encoder-decoder network mapping an image batch to per-pixel class logits.

    Build it with :func:`pixelwise.models.create_model`, not directly.

    Args:
        name: registry name of the architecture (``"unet"``).
        encoder_name: encoder name (``"mobilenet_v2"``).
        num_classes: number of output classes K.
        in_channels: number of input channels C.
        encoder: module mapping ``(B, C, H, W)`` to a list of feature maps.
        decoder: module mapping that list to one feature map.
        segmentation_head: module mapping the decoder output to ``(B, K, H, W)`` logits.
        required_divisor: H and W given to :meth:`forward` must be multiples of it.
        min_train_batch: smallest batch accepted in training mode (2 when a BatchNorm sees
            a single value per channel, e.g. after global pooling).

    Attributes:
        name, encoder_name, num_classes, in_channels, required_divisor, min_train_batch:
            as given.
    """

    def __init__(
        self,
        *,
        name: str,
        encoder_name: str,
        num_classes: int,
        in_channels: int,
        encoder: nn.Module,
        decoder: nn.Module,
        segmentation_head: nn.Module,
        required_divisor: int = 32,
        min_train_batch: int = 1,
    ) -> None:
        super().__init__()
        self.name = name
        self.encoder_name = encoder_name
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.required_divisor = required_divisor
        self.min_train_batch = min_train_batch
        self.encoder = encoder
        self.decoder = decoder
        self.segmentation_head = segmentation_head

    def check_input(self, x: torch.Tensor, check_divisible: bool = True) -> None:
        """Raise :class:`ShapeError` unless ``x`` is a valid ``(B, C, H, W)`` float batch.

        Args:
            x: candidate input.
            check_divisible: also require H and W to be multiples of ``required_divisor``.

        Raises:
            TypeError: ``x`` is not a tensor.
            ShapeError: wrong number of axes or channels, non-float dtype, H or W not
                divisible (the message gives the padded size), or a batch too small for
                training mode.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor (B, C, H, W), got {type(x).__name__}")
        shape = "x".join(str(int(s)) for s in x.shape)
        if x.ndim != 4:
            hint = "; add the batch axis with x.unsqueeze(0)" if x.ndim == 3 else ""
            raise ShapeError(
                f"input {shape}: expected 4 axes (B, C, H, W) with C={self.in_channels}, "
                f"got {x.ndim}{hint}"
            )
        batch, channels, height, width = (int(s) for s in x.shape)
        if channels != self.in_channels:
            raise ShapeError(
                f"input {shape}: expected {self.in_channels} channels on axis 1 "
                f"(B, C, H, W), got {channels}"
            )
        if not x.is_floating_point():
            raise ShapeError(
                f"input {shape}: expected a floating dtype (float32), got {x.dtype}; "
                "convert images with x.float() / 255 and normalise"
            )
        if self.training and batch < self.min_train_batch:
            raise ShapeError(
                f"input {shape}: {self.name} needs a batch of at least {self.min_train_batch} "
                "in training mode (BatchNorm after global pooling); use a larger batch or eval()"
            )
        div = self.required_divisor
        if check_divisible and (height % div or width % div):
            new_h, new_w = padded_size(height, width, div)
            raise ShapeError(
                f"input {shape}: height and width must be divisible by {div}; "
                f"pad to {new_h}x{new_w} (see pixelwise.models.pad_to_divisor, "
                "or use model.predict() which pads and crops)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Args:
            x: ``(B, C, H, W)`` float batch, H and W multiples of ``required_divisor``.

        Returns:
            ``(B, K, H, W)`` float logits (not softmaxed), K = ``num_classes``.

        Raises:
            ShapeError: see :meth:`check_input` (skipped while tracing or exporting).
        """
        if not _is_tracing():
            self.check_input(x)
        features = self.encoder(x)
        decoded = self.decoder(features)
        logits: torch.Tensor = self.segmentation_head(decoded)
        return logits

    def predict(self, x: torch.Tensor, pad_mode: str = "reflect") -> torch.Tensor:
        """Inference on any H and W: pad, run in eval mode without autograd, crop back.

        The module's training flag is restored afterwards.

        Args:
            x: ``(B, C, H, W)`` float batch of any spatial size.
            pad_mode: padding used up to the next multiple of ``required_divisor`` (see
                :func:`pad_to_divisor`).

        Returns:
            ``(B, K, H, W)`` float logits (an inference tensor: no autograd).

        Raises:
            ShapeError: wrong axes, channels or dtype.

        Example:
            >>> import torch
            >>> from pixelwise.models import create_model
            >>> model = create_model("unet", num_classes=2)
            >>> model.predict(torch.rand(1, 3, 50, 70)).shape
            torch.Size([1, 2, 50, 70])
        """
        was_training = self.training
        self.eval()
        try:
            self.check_input(x, check_divisible=False)
            height, width = int(x.shape[-2]), int(x.shape[-1])
            with torch.inference_mode():
                padded, _ = pad_to_divisor(x, self.required_divisor, mode=pad_mode)
                logits = self(padded)
                return logits[..., :height, :width].contiguous()
        finally:
            self.train(was_training)

    def config(self) -> dict[str, Any]:
        """Arguments that rebuild the same architecture: ``create_model(**model.config())``.

        Returns:
            ``{"name", "encoder", "num_classes", "in_channels"}`` (JSON-friendly).
        """
        return {
            "name": self.name,
            "encoder": self.encoder_name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, encoder={self.encoder_name!r}, "
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, "
            f"required_divisor={self.required_divisor}"
        )


def to_channels_last(model: nn.Module) -> nn.Module:
    """Move a model's 4-D weights to channels-last memory format, in place.

    Convolutions often run faster channels-last (GPU tensor cores, oneDNN on CPU); feed
    inputs converted with ``x.contiguous(memory_format=torch.channels_last)``. Results
    are unchanged (up to float rounding).

    Returns:
        The same model, for chaining.
    """
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


# --- Architectures wrapping segmentation_models_pytorch ------------------------------

_CNN_ENCODERS = ("mobilenet_v2", "efficientnet-b0", "resnet18", "resnet34")
_SEGFORMER_ENCODERS = ("mit_b0", *_CNN_ENCODERS)


def _from_smp(
    net: nn.Module,
    *,
    name: str,
    encoder: str,
    num_classes: int,
    in_channels: int,
    min_train_batch: int = 1,
) -> SegmentationModel:
    """Re-home an SMP model's encoder, decoder and head in a :class:`SegmentationModel`."""
    return SegmentationModel(
        name=name,
        encoder_name=encoder,
        num_classes=num_classes,
        in_channels=in_channels,
        encoder=net.encoder,
        decoder=net.decoder,
        segmentation_head=net.segmentation_head,
        required_divisor=int(net.encoder.output_stride),
        min_train_batch=min_train_batch,
    )


@register_model(
    "unet",
    default_encoder="mobilenet_v2",
    encoders=_CNN_ENCODERS,
    description="U-Net: encoder skip connections, sharp boundaries",
)
def _build_unet(
    *, encoder: str, num_classes: int, encoder_weights: str | None, in_channels: int
) -> SegmentationModel:
    import segmentation_models_pytorch as smp

    net = smp.Unet(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
    )
    return _from_smp(
        net, name="unet", encoder=encoder, num_classes=num_classes, in_channels=in_channels
    )


@register_model(
    "fpn",
    default_encoder="mobilenet_v2",
    encoders=_CNN_ENCODERS,
    description="Feature Pyramid Network: light multi-scale decoder, output at 1/4 upsampled",
)
def _build_fpn(
    *, encoder: str, num_classes: int, encoder_weights: str | None, in_channels: int
) -> SegmentationModel:
    import segmentation_models_pytorch as smp

    net = smp.FPN(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
    )
    return _from_smp(
        net, name="fpn", encoder=encoder, num_classes=num_classes, in_channels=in_channels
    )


@register_model(
    "deeplabv3plus",
    default_encoder="mobilenet_v2",
    encoders=_CNN_ENCODERS,
    description="DeepLabV3+: atrous pyramid pooling, output stride 16",
)
def _build_deeplabv3plus(
    *, encoder: str, num_classes: int, encoder_weights: str | None, in_channels: int
) -> SegmentationModel:
    import segmentation_models_pytorch as smp

    net = smp.DeepLabV3Plus(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
        encoder_output_stride=16,
    )
    return _from_smp(
        net,
        name="deeplabv3plus",
        encoder=encoder,
        num_classes=num_classes,
        in_channels=in_channels,
        min_train_batch=2,
    )


@register_model(
    "segformer",
    default_encoder="mit_b0",
    encoders=_SEGFORMER_ENCODERS,
    description="SegFormer: Mix Transformer encoder with an all-MLP decoder",
)
def _build_segformer(
    *, encoder: str, num_classes: int, encoder_weights: str | None, in_channels: int
) -> SegmentationModel:
    import segmentation_models_pytorch as smp

    net = smp.Segformer(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
    )
    return _from_smp(
        net, name="segformer", encoder=encoder, num_classes=num_classes, in_channels=in_channels
    )
