"""Image transforms for MIM-JEPA pretraining, probe training and evaluation (spec sec. 4.1 and 5).

SCOTT + MIM-JEPA (Vélez-García et al., arXiv 2502.18056) trains on two **pixel-aligned** views of
one image: a single RandomResizedCrop (scale 0.2–1.0, ratio 3/4–4/3, bicubic) and a single
horizontal flip (p 0.5) are shared by both views, so token ``i`` of one view sees the same pixels
as token ``i`` of the other. Each view may then get its own photometric change: with probability
0.6, a block of ColorJitter(0.4, 0.4, 0.2, 0.1) (p 0.8), grayscale (p 0.1) and GaussianBlur
(kernel 9, σ ~ U[0.1, 2]) (p 0.3), applied in random order.

- ``AlignedTwoViewTransform``: the two views. Mode ``diff`` samples one photometric plan per
  view, ``same`` applies one sampled plan to both views (the official code's ``same`` silently
  behaves like ``diff``), ``none`` has no photometric change (the views are then equal).
- ``SingleViewTransform``: the same crop, flip and photometric block for one view (probe training).
- ``EvalTransform``: resize the short side to ``round(size / 0.875)``, then centre crop.
- ``normalize_batch``: ImageNet normalisation of a whole uint8 batch, on the training device.

Images stay ``uint8 [3, H, W]`` through the transforms (cheap to move between loader worker
processes). All randomness comes from an explicit ``torch.Generator`` argument: the same
generator state gives the same output; there is no global random state. Each sampling function
draws a fixed number of values, whatever it decides.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

AugmentMode = Literal["none", "diff", "same"]
AUGMENT_MODES: tuple[str, ...] = get_args(AugmentMode)
PhotometricOp = Literal["brightness", "contrast", "saturation", "hue", "grayscale", "blur"]
CROP_ATTEMPTS = 10
"""RandomResizedCrop tries this many (area, ratio) draws before the centre-crop fallback."""
EVAL_CROP_FRACTION = 0.875


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return int(size)


def _check_range(name: str, bounds: tuple[float, float], lowest: float) -> tuple[float, float]:
    """``bounds`` as a float pair with ``lowest < bounds[0] <= bounds[1]``."""
    if len(bounds) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if not lowest < low <= high:
        raise ValueError(f"{name} must satisfy {lowest} < low <= high, got {bounds!r}")
    return low, high


def check_image(image: Tensor) -> None:
    """Raise ``ValueError`` unless ``image`` is a ``uint8`` tensor ``[3, H, W]`` with ``H, W >= 1``."""
    if not isinstance(image, Tensor):
        raise ValueError(f"expected a uint8 image tensor [3, H, W], got {type(image).__name__}")
    if image.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 image tensor [3, H, W], got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"expected a uint8 image tensor [3, H, W], got shape {tuple(image.shape)}")


def _shares_memory(first: Tensor, second: Tensor) -> bool:
    return first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()


def _uniforms(count: int, generator: torch.Generator) -> list[float]:
    """``count`` draws of U[0, 1) from ``generator``, as Python floats (one generator call)."""
    return torch.rand(count, dtype=torch.float64, generator=generator).tolist()


def _uniform_int(u: float, count: int) -> int:
    """Map ``u ~ U[0, 1)`` to a uniform integer in ``[0, count)``."""
    return min(int(u * count), count - 1)


def _random_order(keys: list[float]) -> list[int]:
    """The permutation that sorts i.i.d. uniform ``keys``: a uniformly random order of ``len(keys)``."""
    return sorted(range(len(keys)), key=keys.__getitem__)


# ----------------------------------------------------------------------------- crop and flip


class CropBox(NamedTuple):
    """A crop window in pixels of the source image."""

    top: int
    left: int
    height: int
    width: int


def center_crop_box(height: int, width: int, ratio: tuple[float, float]) -> CropBox:
    """The RandomResizedCrop fallback: the largest centred box whose aspect ``w / h`` is clamped to ``ratio``."""
    aspect = width / height
    if aspect < ratio[0]:
        crop_w, crop_h = width, min(height, round(width / ratio[0]))
    elif aspect > ratio[1]:
        crop_w, crop_h = min(width, round(height * ratio[1])), height
    else:
        crop_w, crop_h = width, height
    crop_w, crop_h = max(crop_w, 1), max(crop_h, 1)
    return CropBox((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)


def sample_crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> CropBox:
    """RandomResizedCrop's box (Szegedy et al., 2015, as torchvision samples it) for an ``height x width`` image.

    Up to :data:`CROP_ATTEMPTS` tries of area ``A · U(scale)`` and aspect ``w / h = exp(U(ln ratio))``,
    ``w = round(√(area · aspect))``, ``h = round(√(area / aspect))``; the first box that fits is placed
    uniformly at random. If none fits, :func:`center_crop_box`. Draws ``4 · CROP_ATTEMPTS`` uniforms.
    """
    draws = _uniforms(4 * CROP_ATTEMPTS, generator)
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for attempt in range(CROP_ATTEMPTS):
        u_area, u_ratio, u_top, u_left = draws[4 * attempt : 4 * attempt + 4]
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
        aspect = math.exp(log_low + (log_high - log_low) * u_ratio)
        crop_w = round(math.sqrt(target_area * aspect))
        crop_h = round(math.sqrt(target_area / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = _uniform_int(u_top, height - crop_h + 1)
            left = _uniform_int(u_left, width - crop_w + 1)
            return CropBox(top, left, crop_h, crop_w)
    return center_crop_box(height, width, ratio)


class RandomCropFlip:
    """RandomResizedCrop to ``size x size`` (bicubic, antialiased) then a horizontal flip with ``flip_p``.

    The geometric half of the SSL transform; its output is the one image both aligned views start from.
    ``__call__(image uint8 [3, H, W], generator) -> uint8 [3, size, size]``, never sharing memory with the input.
    """

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
    ) -> None:
        self.size = _check_size(size)
        self.scale = _check_range("scale", scale, lowest=0.0)
        self.ratio = _check_range("ratio", ratio, lowest=0.0)
        _check_probability("flip_p", flip_p)
        self.flip_p = float(flip_p)

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        check_image(image)
        box = sample_crop_box(image.shape[1], image.shape[2], self.scale, self.ratio, generator)
        flip = _uniforms(1, generator)[0] < self.flip_p
        view = TF.resized_crop(
            image,
            *box,
            size=[self.size, self.size],
            interpolation=InterpolationMode.BICUBIC,
            antialias=True,
        )
        if flip:
            view = TF.horizontal_flip(view)
        if _shares_memory(view, image):  # a full-image box at the output size is returned as is
            return view.clone(memory_format=torch.contiguous_format)
        return view.contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, flip_p={self.flip_p})"


class ResizeCropFlip:
    """Resize the short side to ``round(size / crop_fraction)`` (bicubic, antialiased), take a random
    ``size x size`` crop, flip with ``flip_p``: the classic fine-tuning view (S3L: resize 256, random
    crop 224, flip), the training counterpart of :class:`EvalTransform`'s centre crop.

    ``__call__(image uint8 [3, H, W], generator) -> uint8 [3, size, size]``, never sharing memory with the input.
    """

    def __init__(self, size: int, crop_fraction: float = 0.875, flip_p: float = 0.5) -> None:
        self.size = _check_size(size)
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.resize_to = round(size / crop_fraction)
        _check_probability("flip_p", flip_p)
        self.flip_p = float(flip_p)

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        check_image(image)
        resized = TF.resize(image, [self.resize_to], interpolation=InterpolationMode.BICUBIC, antialias=True)
        u_top, u_left, u_flip = _uniforms(3, generator)
        top = _uniform_int(u_top, resized.shape[1] - self.size + 1)
        left = _uniform_int(u_left, resized.shape[2] - self.size + 1)
        view = resized[:, top : top + self.size, left : left + self.size]
        if u_flip < self.flip_p:
            view = TF.horizontal_flip(view)
        return view.clone(memory_format=torch.contiguous_format)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, resize_to={self.resize_to}, flip_p={self.flip_p})"


# ----------------------------------------------------------------------------- uint8 kernels


def shift_hue(image: Tensor, shift: float) -> Tensor:
    """Rotate the HSV hue of a uint8 ``[3, H, W]`` image by ``shift`` turns: torchvision's ``adjust_hue``.

    Same result within ±1 (rounding) and about 3x faster on small images: value (max) and chroma
    (max - min) are kept, the hue ``h`` (in sextants) is shifted and each channel is
    ``max - chroma · clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + h) mod 6``, ``n = 5, 3, 1`` for R, G, B.
    """
    red, green, blue = image.to(torch.float32).unbind(0)
    value = torch.maximum(torch.maximum(red, green), blue)
    chroma = value - torch.minimum(torch.minimum(red, green), blue)
    # hue · chroma, by the maximal channel (red first, then green, as HSV does on ties)
    scaled_hue = torch.where(
        value == red,
        green - blue,
        torch.where(value == green, blue - red + 2.0 * chroma, red - green + 4.0 * chroma),
    )
    hue = scaled_hue / chroma.clamp(min=1.0) + 6.0 * shift  # chroma of integer pixels is 0 or >= 1
    sextant = torch.stack((hue + 5.0, hue + 3.0, hue + 1.0))
    sextant = sextant - 6.0 * torch.floor(sextant * (1.0 / 6.0))
    weight = torch.minimum(sextant, 4.0 - sextant).clamp_(0.0, 1.0)
    return (value - chroma * weight).round_().to(torch.uint8)


def gaussian_kernel1d(sigma: float, kernel_size: int) -> list[float]:
    """The normalised 1-D Gaussian ``exp(-x² / 2σ²)`` at ``x = -(k-1)/2 .. (k-1)/2``."""
    half = kernel_size // 2
    weights = [math.exp(-0.5 * ((index - half) / sigma) ** 2) for index in range(kernel_size)]
    total = sum(weights)
    return [weight / total for weight in weights]


def _symmetric_filter(image: Tensor, weights: list[float], dim: int, length: int) -> Tensor:
    """Correlate a padded float image with symmetric ``weights`` along ``dim`` ("valid": ``length`` out)."""
    half = len(weights) // 2
    output = image.narrow(dim, half, length) * weights[half]
    for offset in range(half):
        mirrored = image.narrow(dim, offset, length) + image.narrow(dim, len(weights) - 1 - offset, length)
        output.add_(mirrored, alpha=weights[offset])
    return output


def gaussian_blur(image: Tensor, sigma: float, kernel_size: int) -> Tensor:
    """Gaussian blur of a uint8 ``[3, H, W]`` image with reflect padding: torchvision's ``gaussian_blur``.

    Same result within ±1 (rounding); separable, about 3x faster than its dense 2-D convolution.
    The kernel is shrunk on images too small for reflect padding (``kernel_size // 2 < min(H, W)``).
    """
    kernel_size = min(kernel_size, 2 * min(image.shape[-2:]) - 1)
    if kernel_size < 3:
        return image
    half = kernel_size // 2
    weights = gaussian_kernel1d(sigma, kernel_size)
    padded = torch.nn.functional.pad(image.to(torch.float32)[None], [half] * 4, mode="reflect")[0]
    rows = _symmetric_filter(padded, weights, dim=-1, length=image.shape[-1])
    blurred = _symmetric_filter(rows, weights, dim=-2, length=image.shape[-2])
    return blurred.round_().to(torch.uint8)


# ----------------------------------------------------------------------------- photometric block


@dataclass(frozen=True)
class PhotometricConfig:
    """The photometric block of the SSL transform (spec sec. 4.1); defaults are the paper's.

    With probability ``p`` the block runs: ColorJitter (with ``jitter_p``; brightness, contrast,
    saturation factors ``~ U[max(0, 1 - s), 1 + s]`` and hue shift ``~ U[-hue, hue]``, the four in random
    order as torchvision's ``ColorJitter``), grayscale with 3 output channels (``grayscale_p``) and
    Gaussian blur (``blur_p``; ``blur_kernel`` pixels, σ ``~ U(blur_sigma)``), the three in random order.
    A strength of 0 leaves that jitter operation out.
    """

    p: float = 0.6
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.1
    blur_p: float = 0.3
    blur_kernel: int = 9
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self) -> None:
        for name in ("p", "jitter_p", "grayscale_p", "blur_p"):
            _check_probability(name, getattr(self, name))
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be a positive odd int, got {self.blur_kernel}")
        object.__setattr__(self, "blur_sigma", _check_range("blur_sigma", self.blur_sigma, lowest=0.0))


class PhotometricStep(NamedTuple):
    """One operation of a plan: ``value`` is the factor (brightness, contrast, saturation), the hue
    shift (hue), σ (blur), or unused (grayscale)."""

    op: PhotometricOp
    value: float = 0.0


@dataclass(frozen=True)
class PhotometricPlan:
    """A sampled photometric block: whether it runs and its operations, in the order they are applied.

    ``applied`` can be True with no steps (the block ran but each of its three parts was skipped).
    """

    applied: bool
    steps: tuple[PhotometricStep, ...] = ()
    blur_kernel: int = 9


IDENTITY_PLAN = PhotometricPlan(applied=False)
COLOR_ADJUSTMENTS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "brightness": TF.adjust_brightness,
    "contrast": TF.adjust_contrast,
    "saturation": TF.adjust_saturation,
    "hue": shift_hue,
}
PHOTOMETRIC_DRAWS = 16
"""Uniforms drawn per plan: block gate, 3 part gates, 3 part-order keys, 4 jitter-order keys,
4 jitter values, σ."""


def _jitter_factor(strength: float, u: float) -> float:
    """``U[max(0, 1 - strength), 1 + strength]`` from ``u ~ U[0, 1)``: a ColorJitter factor."""
    low = max(0.0, 1.0 - strength)
    return low + (1.0 + strength - low) * u


def _jitter_steps(config: PhotometricConfig, order_keys: list[float], values: list[float]) -> list[PhotometricStep]:
    """ColorJitter's four operations in random order, each with its sampled factor (or hue shift)."""
    candidates = (
        PhotometricStep("brightness", _jitter_factor(config.brightness, values[0])),
        PhotometricStep("contrast", _jitter_factor(config.contrast, values[1])),
        PhotometricStep("saturation", _jitter_factor(config.saturation, values[2])),
        PhotometricStep("hue", config.hue * (2.0 * values[3] - 1.0)),
    )
    strengths = (config.brightness, config.contrast, config.saturation, config.hue)
    return [candidates[index] for index in _random_order(order_keys) if strengths[index] > 0]


def sample_photometric(config: PhotometricConfig, generator: torch.Generator) -> PhotometricPlan:
    """Draw one photometric plan from ``config`` (always :data:`PHOTOMETRIC_DRAWS` uniforms)."""
    u = _uniforms(PHOTOMETRIC_DRAWS, generator)
    if not u[0] < config.p:
        return IDENTITY_PLAN
    jitter = _jitter_steps(config, order_keys=u[7:11], values=u[11:15])
    sigma = config.blur_sigma[0] + (config.blur_sigma[1] - config.blur_sigma[0]) * u[15]
    parts = (
        jitter if u[1] < config.jitter_p else [],
        [PhotometricStep("grayscale")] if u[2] < config.grayscale_p else [],
        [PhotometricStep("blur", sigma)] if u[3] < config.blur_p else [],
    )
    steps = tuple(step for index in _random_order(u[4:7]) for step in parts[index])
    return PhotometricPlan(applied=True, steps=steps, blur_kernel=config.blur_kernel)


def _apply_step(image: Tensor, step: PhotometricStep, blur_kernel: int) -> Tensor:
    if step.op == "grayscale":
        return TF.rgb_to_grayscale(image, num_output_channels=3)
    if step.op == "blur":
        return gaussian_blur(image, step.value, blur_kernel)
    return COLOR_ADJUSTMENTS[step.op](image, step.value)


def apply_photometric(image: Tensor, plan: PhotometricPlan) -> Tensor:
    """Apply ``plan``'s steps in order to ``image`` (uint8 ``[3, H, W]``). Returns ``image`` itself
    when the plan has no steps, otherwise a new contiguous uint8 tensor."""
    if not plan.steps:
        return image
    for step in plan.steps:
        image = _apply_step(image, step, plan.blur_kernel)
    return image.contiguous()  # grayscale returns an expanded (stride-0) view


# ----------------------------------------------------------------------------- transforms


class AlignedTwoViewTransform:
    """Two pixel-aligned views of one image for MIM-JEPA (spec sec. 4.1).

    One :class:`RandomCropFlip` is shared by both views; then the photometric block per ``mode``:
    ``"diff"`` samples a plan per view, ``"same"`` applies one plan to both views, ``"none"`` applies
    none. ``__call__(image uint8 [3, H, W], generator) -> (view_1, view_2)``, each uint8
    ``[3, size, size]``; the two views never share memory.
    """

    def __init__(
        self,
        size: int,
        mode: AugmentMode = "diff",
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        photometric: PhotometricConfig = PhotometricConfig(),
    ) -> None:
        if mode not in AUGMENT_MODES:
            raise ValueError(f"mode must be one of {AUGMENT_MODES}, got {mode!r}")
        self.geometry = RandomCropFlip(size, scale=scale, ratio=ratio, flip_p=flip_p)
        self.mode = mode
        self.photometric = photometric

    def sample_plans(self, generator: torch.Generator) -> tuple[PhotometricPlan, PhotometricPlan]:
        """The photometric plans of the two views for this transform's mode."""
        if self.mode == "none":
            return IDENTITY_PLAN, IDENTITY_PLAN
        first = sample_photometric(self.photometric, generator)
        if self.mode == "same":
            return first, first
        return first, sample_photometric(self.photometric, generator)

    def __call__(self, image: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        aligned = self.geometry(image, generator)
        first_plan, second_plan = self.sample_plans(generator)
        first = apply_photometric(aligned, first_plan)
        second = apply_photometric(aligned, second_plan)
        if _shares_memory(first, second):
            second = second.clone()
        return first, second

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.geometry!r}, mode={self.mode!r}, photometric={self.photometric})"


class SingleViewTransform:
    """Probe-training transform (spec sec. 5): the SSL crop, flip and photometric block, one view.

    ``__call__(image uint8 [3, H, W], generator) -> uint8 [3, size, size]``. Pass
    ``PhotometricConfig(p=0.0)`` for crop and flip only, ``geometry="resize_random"`` for
    :class:`ResizeCropFlip` instead of RandomResizedCrop.
    """

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        photometric: PhotometricConfig = PhotometricConfig(),
        geometry: Literal["random_resized", "resize_random"] = "random_resized",
    ) -> None:
        self.geometry: RandomCropFlip | ResizeCropFlip
        if geometry == "resize_random":
            self.geometry = ResizeCropFlip(size, flip_p=flip_p)
        else:
            self.geometry = RandomCropFlip(size, scale=scale, ratio=ratio, flip_p=flip_p)
        self.photometric = photometric

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        view = self.geometry(image, generator)
        return apply_photometric(view, sample_photometric(self.photometric, generator))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.geometry!r}, photometric={self.photometric})"


class TwoCropTransform:
    """Two independently cropped, flipped and colour-augmented views of one image, the input of the
    contrastive methods (MoCo v2's "aug-plus" with the S3L preset's photometric settings).

    ``__call__(image uint8 [3, H, W], generator) -> (view_1, view_2)``, each uint8 ``[3, size, size]``.
    """

    def __init__(self, view: SingleViewTransform) -> None:
        self.view = view

    def __call__(self, image: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.view(image, generator), self.view(image, generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.view!r})"


class EvalTransform:
    """Test-time transform (spec sec. 5): resize the short side to ``round(size / crop_fraction)``
    (bicubic, antialiased), then centre crop ``size x size``.

    ``__call__(image uint8 [3, H, W], generator=None) -> uint8 [3, size, size]``; deterministic, the
    generator is accepted (and ignored) so that all transforms share one signature.
    """

    def __init__(self, size: int, crop_fraction: float = EVAL_CROP_FRACTION) -> None:
        self.size = _check_size(size)
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.crop_fraction = float(crop_fraction)
        self.resize_to = round(size / crop_fraction)

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_image(image)
        resized = TF.resize(image, [self.resize_to], interpolation=InterpolationMode.BICUBIC, antialias=True)
        view = TF.center_crop(resized, [self.size, self.size])
        if _shares_memory(view, image):
            return view.clone(memory_format=torch.contiguous_format)
        return view.contiguous()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, crop_fraction={self.crop_fraction}, resize_to={self.resize_to})"
        )


def normalize_batch(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """ImageNet normalisation ``(x / 255 - mean) / std`` of a uint8 batch ``[B, 3, H, W]`` on its device.

    Meant to run on the training device after the uint8 batch was transferred (4x less to copy than
    float32). Computed in at least float32 and rounded once to ``dtype`` (a floating dtype). The
    statistics are Python scalars, per channel: no host-to-device copy, so no stream synchronisation.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 batch [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    normalised = images.to(torch.promote_types(dtype, torch.float32))
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)):
        normalised[:, channel].sub_(255.0 * mean).div_(255.0 * std)
    return normalised.to(dtype)
