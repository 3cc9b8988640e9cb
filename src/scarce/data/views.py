"""The training views a method asks for, built from a run's ``augmentation`` section.

Each method picks one in its ``train_transform`` (see :class:`scarce.methods.base.Method`):
one view (supervised), two independent crops (MoCo v2, SimCLR, BYOL), or two aligned views
(MIM-JEPA, spec sec. 4.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scarce.data.transforms import AlignedTwoViewTransform, PhotometricConfig, SingleViewTransform, TwoCropTransform

if TYPE_CHECKING:
    from scarce.config import AugmentationConfig, ScarceConfig

ViewTransform = AlignedTwoViewTransform | SingleViewTransform | TwoCropTransform


def photometric_of(aug: AugmentationConfig) -> PhotometricConfig:
    """The photometric part of the ``augmentation`` section."""
    return PhotometricConfig(
        p=aug.photometric_p,
        jitter_p=aug.jitter_p,
        brightness=aug.brightness,
        contrast=aug.contrast,
        saturation=aug.saturation,
        hue=aug.hue,
        grayscale_p=aug.grayscale_p,
        blur_p=aug.blur_p,
        blur_kernel=aug.blur_kernel,
        blur_sigma=aug.blur_sigma,
    )


def _geometry(aug: AugmentationConfig) -> dict[str, Any]:
    return {"scale": aug.crop_scale, "ratio": aug.crop_ratio, "flip_p": aug.flip_p}


def single_view(config: ScarceConfig, size: int) -> SingleViewTransform:
    """One augmented view at ``size`` px (``augmentation.geometry`` picks the crop)."""
    aug = config.augmentation
    return SingleViewTransform(size, photometric=photometric_of(aug), geometry=aug.geometry, **_geometry(aug))


def two_crops(config: ScarceConfig, size: int) -> TwoCropTransform:
    """Two independently augmented random-resized crops (the contrastive methods)."""
    aug = config.augmentation
    return TwoCropTransform(SingleViewTransform(size, photometric=photometric_of(aug), **_geometry(aug)))


def aligned_pair(config: ScarceConfig, size: int) -> AlignedTwoViewTransform:
    """Two views of the same crop, photometric augmentation per ``augmentation.mode`` (MIM-JEPA)."""
    aug = config.augmentation
    return AlignedTwoViewTransform(size, mode=aug.mode, photometric=photometric_of(aug), **_geometry(aug))
