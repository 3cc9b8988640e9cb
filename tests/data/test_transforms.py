"""SSL, probe and eval transforms: shapes, determinism, view alignment, sampling statistics, kernels."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from scarce.data.transforms import (
    IDENTITY_PLAN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AlignedTwoViewTransform,
    CropBox,
    EvalTransform,
    PhotometricConfig,
    PhotometricPlan,
    PhotometricStep,
    RandomCropFlip,
    SingleViewTransform,
    apply_photometric,
    center_crop_box,
    gaussian_blur,
    normalize_batch,
    sample_crop_box,
    sample_photometric,
    shift_hue,
)

NO_PHOTOMETRIC = PhotometricConfig(p=0.0)
GRAYSCALE_ONLY = PhotometricConfig(p=1.0, jitter_p=0.0, grayscale_p=1.0, blur_p=0.0)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def copy_generator(generator: torch.Generator) -> torch.Generator:
    twin = torch.Generator()
    twin.set_state(generator.get_state())
    return twin


def random_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=seeded(seed))


def coordinate_image(height: int, width: int) -> torch.Tensor:
    """Channel 0 = row, channel 1 = column, channel 2 = a constant: every pixel says where it is."""
    rows = torch.arange(height).view(height, 1).expand(height, width)
    cols = torch.arange(width).view(1, width).expand(height, width)
    return torch.stack((rows, cols, torch.full_like(rows, 7))).to(torch.uint8)


# ----------------------------------------------------------------------------- shapes and determinism


@pytest.mark.parametrize("shape", [(96, 96), (1, 1), (5, 300), (300, 7), (64, 200)])
@pytest.mark.parametrize("mode", ["none", "diff", "same"])
def test_two_view_shapes_and_dtypes(shape: tuple[int, int], mode: str) -> None:
    transform = AlignedTwoViewTransform(32, mode=mode)
    image = random_image(*shape)
    for seed in range(4):
        first, second = transform(image, seeded(seed))
        for view in (first, second):
            assert view.dtype == torch.uint8
            assert view.shape == (3, 32, 32)
            assert view.is_contiguous()
        assert first.untyped_storage().data_ptr() != second.untyped_storage().data_ptr()


@pytest.mark.parametrize("shape", [(96, 96), (1, 1), (40, 130)])
def test_single_view_and_eval_shapes(shape: tuple[int, int]) -> None:
    image = random_image(*shape)
    for transform in (SingleViewTransform(24), EvalTransform(24)):
        view = transform(image, seeded(0))
        assert view.dtype == torch.uint8
        assert view.shape == (3, 24, 24)
        assert view.is_contiguous()


def test_outputs_never_alias_the_input() -> None:
    image = random_image(32, 32)
    full_view = RandomCropFlip(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    views = [full_view(image, seeded(0)), EvalTransform(32, crop_fraction=1.0)(image)]
    views += AlignedTwoViewTransform(32, mode="none", scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)(image, seeded(0))
    for view in views:
        assert torch.equal(view, image)
        assert view.untyped_storage().data_ptr() != image.untyped_storage().data_ptr()


@pytest.mark.parametrize("mode", ["none", "diff", "same"])
def test_same_generator_state_same_views(mode: str) -> None:
    transform = AlignedTwoViewTransform(48, mode=mode)
    image = random_image(80, 120)
    for seed in range(5):
        first = transform(image, seeded(seed))
        second = transform(image, seeded(seed))
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_different_seeds_give_different_views() -> None:
    transform = AlignedTwoViewTransform(48)
    image = random_image(80, 120)
    views = [transform(image, seeded(seed))[0] for seed in range(6)]
    distinct = {tuple(view.flatten()[::97].tolist()) for view in views}
    assert len(distinct) == len(views)


def test_single_view_determinism() -> None:
    transform = SingleViewTransform(48)
    image = random_image(80, 120)
    assert torch.equal(transform(image, seeded(3)), transform(image, seeded(3)))
    assert not torch.equal(transform(image, seeded(3)), transform(image, seeded(4)))


def test_transforms_survive_pickling() -> None:
    """Loader workers may receive the transforms by pickle (spawn start method)."""
    image = random_image(50, 70)
    for transform in (AlignedTwoViewTransform(32, mode="same"), SingleViewTransform(32), EvalTransform(32)):
        clone = pickle.loads(pickle.dumps(transform))
        expected, actual = transform(image, seeded(1)), clone(image, seeded(1))
        if isinstance(expected, torch.Tensor):
            expected, actual = (expected,), (actual,)
        assert all(torch.equal(a, b) for a, b in zip(expected, actual, strict=True))


# ----------------------------------------------------------------------------- modes and alignment


def test_mode_none_gives_identical_views() -> None:
    transform = AlignedTwoViewTransform(40, mode="none")
    image = random_image(60, 90)
    for seed in range(20):
        first, second = transform(image, seeded(seed))
        assert torch.equal(first, second)


def test_mode_same_gives_identical_views_with_photometric_change() -> None:
    same = AlignedTwoViewTransform(40, mode="same")
    plain = AlignedTwoViewTransform(40, mode="none")
    image = random_image(60, 90)
    changed = 0
    for seed in range(60):
        first, second = same(image, seeded(seed))
        assert torch.equal(first, second)
        changed += not torch.equal(first, plain(image, seeded(seed))[0])  # same crop: drawn first
    assert changed > 20  # the block really ran (about 0.52 of the seeds change the pixels)


def test_mode_diff_views_differ_for_most_seeds() -> None:
    transform = AlignedTwoViewTransform(40, mode="diff")
    image = random_image(60, 90)
    differ = sum(not torch.equal(*transform(image, seeded(seed))) for seed in range(100))
    assert differ > 55  # expected about 77: both plans empty with probability about 0.23


@pytest.mark.parametrize("mode", ["diff", "same"])
def test_views_share_one_crop_and_flip(mode: str) -> None:
    """Each view is its photometric plan applied to ONE crop-and-flip of the image."""
    transform = AlignedTwoViewTransform(40, mode=mode)
    image = random_image(60, 90)
    for seed in range(30):
        generator = seeded(seed)
        replay = copy_generator(generator)
        first, second = transform(image, generator)
        aligned = transform.geometry(image, replay)
        first_plan, second_plan = transform.sample_plans(replay)
        assert torch.equal(first, apply_photometric(aligned, first_plan))
        assert torch.equal(second, apply_photometric(aligned, second_plan))
        assert (first_plan == second_plan) == (mode == "same") or first_plan == IDENTITY_PLAN == second_plan


def test_crop_and_flip_follow_the_sampled_box() -> None:
    """On a coordinate image the view is the resized box, mirrored when the flip was drawn."""
    image = coordinate_image(120, 160)
    geometry = RandomCropFlip(30)
    flips = 0
    for seed in range(40):
        generator = seeded(seed)
        replay = copy_generator(generator)
        view = geometry(image, generator)
        box = sample_crop_box(120, 160, geometry.scale, geometry.ratio, replay)
        flipped = float(torch.rand(1, dtype=torch.float64, generator=replay)) < 0.5
        expected = TF.resized_crop(image, *box, size=[30, 30], interpolation=InterpolationMode.BICUBIC, antialias=True)
        assert torch.equal(view, expected.flip(-1) if flipped else expected)
        # the columns run right-to-left exactly when flipped; rows always run downward
        assert (view[1, :, 0].float().mean() > view[1, :, -1].float().mean()) == flipped
        assert view[0, 0, :].float().mean() < view[0, -1, :].float().mean()
        flips += flipped
    assert 0 < flips < 40


def test_flip_frequency_is_one_half() -> None:
    image = random_image(16, 16)
    geometry = RandomCropFlip(16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flips = 0
    for seed in range(400):
        view = geometry(image, seeded(seed))
        if torch.equal(view, image.flip(-1)):
            flips += 1
        else:
            assert torch.equal(view, image)
    assert abs(flips / 400 - 0.5) < 0.1  # binomial sd 0.025


@pytest.mark.parametrize(("flip_p", "expected"), [(0.0, False), (1.0, True)])
def test_flip_probability_extremes(flip_p: float, expected: bool) -> None:
    image = random_image(16, 16)
    geometry = RandomCropFlip(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=flip_p)
    for seed in range(10):
        assert torch.equal(geometry(image, seeded(seed)), image.flip(-1) if expected else image)


# ----------------------------------------------------------------------------- crop boxes


def test_sample_crop_box_respects_scale_and_ratio() -> None:
    height, width = 480, 640
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)
    generator = seeded(0)
    fractions, aspects, tops = [], [], []
    for _ in range(2000):
        top, left, crop_h, crop_w = sample_crop_box(height, width, scale, ratio, generator)
        assert 0 <= top <= height - crop_h and 0 <= left <= width - crop_w
        fractions.append(crop_h * crop_w / (height * width))
        aspects.append(crop_w / crop_h)
        tops.append(top)
    # rounding w and h to whole pixels moves area and aspect by well under 1% at these sizes
    assert scale[0] * 0.99 <= min(fractions) and max(fractions) <= scale[1] * 1.01
    assert ratio[0] * 0.99 <= min(aspects) and max(aspects) <= ratio[1] * 1.01
    assert min(fractions) < 0.22 and max(fractions) > 0.95  # the whole range is drawn
    assert min(aspects) < 0.77 and max(aspects) > 1.3
    assert min(tops) == 0 and max(tops) > 200  # the lowest top is 480 - 215 = 265


def test_sample_crop_box_is_reproducible() -> None:
    boxes = [sample_crop_box(100, 200, (0.2, 1.0), (0.75, 4 / 3), seeded(5)) for _ in range(2)]
    assert boxes[0] == boxes[1]
    assert isinstance(boxes[0], CropBox)


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (100, 300, CropBox(0, 83, 100, 133)),  # too wide: full height, width 4/3 of it, centred
        (300, 100, CropBox(83, 0, 133, 100)),  # too tall: full width, height 4/3 of it, centred
        (50, 60, CropBox(0, 0, 50, 60)),  # aspect inside the range: the whole image
        (1, 1, CropBox(0, 0, 1, 1)),
    ],
)
def test_fallback_is_the_centre_crop(height: int, width: int, expected: CropBox) -> None:
    ratio = (3 / 4, 4 / 3)
    assert center_crop_box(height, width, ratio) == expected
    # a scale above 1 never fits, so every draw falls back
    for seed in range(5):
        assert sample_crop_box(height, width, (2.0, 3.0), ratio, seeded(seed)) == expected


def test_tiny_images_always_get_a_valid_box() -> None:
    for height, width in [(1, 1), (1, 9), (9, 1), (2, 3)]:
        for seed in range(20):
            top, left, crop_h, crop_w = sample_crop_box(height, width, (0.2, 1.0), (0.75, 4 / 3), seeded(seed))
            assert 1 <= crop_h <= height and 1 <= crop_w <= width
            assert 0 <= top <= height - crop_h and 0 <= left <= width - crop_w


# ----------------------------------------------------------------------------- photometric plans


def test_photometric_block_and_part_probabilities() -> None:
    config = PhotometricConfig()
    generator = seeded(0)
    plans = [sample_photometric(config, generator) for _ in range(4000)]
    applied = [plan for plan in plans if plan.applied]
    assert abs(len(applied) / len(plans) - 0.6) < 0.03  # sd 0.008
    parts = Counter()
    for plan in applied:
        ops = {step.op for step in plan.steps}
        parts["jitter"] += "brightness" in ops
        parts["grayscale"] += "grayscale" in ops
        parts["blur"] += "blur" in ops
    assert abs(parts["jitter"] / len(applied) - 0.8) < 0.04
    assert abs(parts["grayscale"] / len(applied) - 0.1) < 0.03
    assert abs(parts["blur"] / len(applied) - 0.3) < 0.04
    assert all(plan == IDENTITY_PLAN for plan in plans if not plan.applied)


def test_photometric_parameters_and_orders() -> None:
    generator = seeded(1)
    config = PhotometricConfig(p=1.0, jitter_p=1.0, grayscale_p=1.0, blur_p=1.0)
    bounds = {
        "brightness": (0.6, 1.4),
        "contrast": (0.6, 1.4),
        "saturation": (0.8, 1.2),
        "hue": (-0.1, 0.1),
        "blur": (0.1, 2.0),
    }
    first_jitter, first_part = Counter(), Counter()
    for _ in range(600):
        plan = sample_photometric(config, generator)
        ops = [step.op for step in plan.steps]
        assert sorted(ops) == sorted([*bounds, "grayscale"])
        jitter_positions = [index for index, op in enumerate(ops) if op not in ("grayscale", "blur")]
        assert jitter_positions == list(range(jitter_positions[0], jitter_positions[0] + 4))  # one block
        for step in plan.steps:
            if step.op in bounds:
                low, high = bounds[step.op]
                assert low <= step.value <= high
        first_jitter[ops[jitter_positions[0]]] += 1
        first_part["jitter" if jitter_positions[0] == 0 else ops[0]] += 1
        assert plan.blur_kernel == 9
    assert set(first_jitter) == {"brightness", "contrast", "saturation", "hue"}
    assert min(first_jitter.values()) > 100  # each about 150: ColorJitter's order is random
    assert set(first_part) == {"jitter", "grayscale", "blur"}
    assert min(first_part.values()) > 140  # each about 200: the block's order is random


def test_zero_strength_leaves_the_jitter_operation_out() -> None:
    config = PhotometricConfig(p=1.0, jitter_p=1.0, brightness=0.0, hue=0.0)
    generator = seeded(2)
    for _ in range(50):
        ops = {step.op for step in sample_photometric(config, generator).steps}
        assert {"contrast", "saturation"} <= ops and not ops & {"brightness", "hue"}


def test_identity_plan_returns_the_image() -> None:
    image = random_image(8, 8)
    assert apply_photometric(image, IDENTITY_PLAN) is image
    assert apply_photometric(image, PhotometricPlan(applied=True)) is image


def test_grayscale_has_three_equal_channels() -> None:
    image = random_image(40, 40)
    gray = apply_photometric(image, PhotometricPlan(applied=True, steps=(PhotometricStep("grayscale"),)))
    assert gray.shape == (3, 40, 40) and gray.is_contiguous()
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    for first, second in [AlignedTwoViewTransform(24, photometric=GRAYSCALE_ONLY)(image, seeded(s)) for s in range(5)]:
        for view in (first, second):
            assert torch.equal(view[0], view[1]) and torch.equal(view[1], view[2])


def test_disabled_photometric_diff_views_are_equal() -> None:
    transform = AlignedTwoViewTransform(40, mode="diff", photometric=NO_PHOTOMETRIC)
    image = coordinate_image(70, 90)
    for seed in range(10):
        assert torch.equal(*transform(image, seeded(seed)))


def test_apply_photometric_runs_the_steps_in_order() -> None:
    image = random_image(30, 30)
    steps = (PhotometricStep("brightness", 1.3), PhotometricStep("hue", 0.07), PhotometricStep("blur", 1.1))
    expected = gaussian_blur(shift_hue(TF.adjust_brightness(image, 1.3), 0.07), 1.1, 9)
    assert torch.equal(apply_photometric(image, PhotometricPlan(applied=True, steps=steps)), expected)


# ----------------------------------------------------------------------------- uint8 kernels


def test_shift_hue_matches_torchvision() -> None:
    image = random_image(40, 40, seed=3)
    image[:, :5] = image[0:1, :5]  # gray pixels (chroma 0)
    image[1, 5:10] = image[0, 5:10]  # red = green ties
    image[2, 10:15] = image[1, 10:15]  # green = blue ties
    image[:, 15, :3] = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    for shift in (-0.5, -0.1, -0.03, 0.0, 0.05, 0.1, 0.5):
        difference = shift_hue(image, shift).int() - TF.adjust_hue(image, shift).int()
        assert difference.abs().max() <= 1, shift
        assert (difference != 0).float().mean() < 0.15  # off-by-one rounding only


@pytest.mark.parametrize("sigma", [0.1, 0.7, 1.3, 2.0])
@pytest.mark.parametrize("kernel_size", [3, 9])
def test_gaussian_blur_matches_torchvision(sigma: float, kernel_size: int) -> None:
    image = random_image(33, 47, seed=4)
    expected = TF.gaussian_blur(image, kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma])
    assert (gaussian_blur(image, sigma, kernel_size).int() - expected.int()).abs().max() <= 1


def test_gaussian_blur_on_tiny_images() -> None:
    tiny = random_image(3, 3)
    blurred = gaussian_blur(tiny, 2.0, 9)  # kernel shrunk to 5: reflect padding of 2 fits in 3 pixels
    assert torch.equal(blurred, gaussian_blur(tiny, 2.0, 5))
    single = random_image(1, 1)
    assert torch.equal(gaussian_blur(single, 2.0, 9), single)
    transform = AlignedTwoViewTransform(2, photometric=PhotometricConfig(p=1.0, blur_p=1.0))
    assert transform(random_image(10, 10), seeded(0))[0].shape == (3, 2, 2)


# ----------------------------------------------------------------------------- eval and normalisation


def test_eval_transform_resizes_the_short_side_then_centre_crops() -> None:
    transform = EvalTransform(96)
    assert transform.resize_to == round(96 / 0.875) == 110
    image = random_image(100, 150)
    resized = TF.resize(image, [110, 165], interpolation=InterpolationMode.BICUBIC, antialias=True)
    expected = resized[:, 7:103, 34:130]  # top (110 - 96) / 2 = 7; left (165 - 96) / 2 = 34.5, rounded to 34
    view = transform(image)
    assert view.shape == (3, 96, 96)
    assert torch.equal(view, expected)
    assert torch.equal(transform(image, seeded(0)), view)  # deterministic, generator ignored


def test_eval_transform_of_a_coordinate_image_is_centred() -> None:
    view = EvalTransform(20, crop_fraction=1.0)(coordinate_image(20, 60))
    assert view[1, 0, 0] == 20 and view[1, 0, -1] == 39  # columns 20..39 of 0..59
    assert torch.equal(view[0, :, 0], torch.arange(20, dtype=torch.uint8))


def test_normalize_batch_matches_hand_computation() -> None:
    images = torch.tensor([0, 128, 255, 37], dtype=torch.uint8).view(1, 1, 2, 2).repeat(2, 3, 1, 1)
    normalised = normalize_batch(images)
    assert normalised.dtype == torch.float32 and normalised.shape == (2, 3, 2, 2)
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)):
        expected = [(value / 255.0 - mean) / std for value in (0, 128, 255, 37)]
        torch.testing.assert_close(normalised[1, channel].flatten(), torch.tensor(expected), rtol=1e-6, atol=1e-6)
    assert images.dtype == torch.uint8 and images[0, 0, 1, 1] == 37  # the input is untouched


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_normalize_batch_dtypes(dtype: torch.dtype) -> None:
    images = random_image(8, 8).unsqueeze(0).contiguous(memory_format=torch.channels_last)
    normalised = normalize_batch(images, dtype=dtype)
    assert normalised.dtype == dtype
    torch.testing.assert_close(normalised.float(), normalize_batch(images).float(), rtol=1e-2, atol=1e-2)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: AlignedTwoViewTransform(0), "size"),
        (lambda: AlignedTwoViewTransform(-3), "size"),
        (lambda: AlignedTwoViewTransform(32.0), "size"),
        (lambda: AlignedTwoViewTransform(32, mode="both"), "mode"),
        (lambda: AlignedTwoViewTransform(32, flip_p=1.5), "flip_p"),
        (lambda: AlignedTwoViewTransform(32, scale=(0.8, 0.2)), "scale"),
        (lambda: AlignedTwoViewTransform(32, scale=(0.0, 1.0)), "scale"),
        (lambda: AlignedTwoViewTransform(32, ratio=(4 / 3, 3 / 4)), "ratio"),
        (lambda: SingleViewTransform(32, flip_p=-0.1), "flip_p"),
        (lambda: SingleViewTransform(0), "size"),
        (lambda: EvalTransform(0), "size"),
        (lambda: EvalTransform(32, crop_fraction=0.0), "crop_fraction"),
        (lambda: EvalTransform(32, crop_fraction=1.2), "crop_fraction"),
        (lambda: PhotometricConfig(p=1.2), "p"),
        (lambda: PhotometricConfig(jitter_p=-0.5), "jitter_p"),
        (lambda: PhotometricConfig(grayscale_p=2.0), "grayscale_p"),
        (lambda: PhotometricConfig(blur_p=-1.0), "blur_p"),
        (lambda: PhotometricConfig(brightness=-0.1), "brightness"),
        (lambda: PhotometricConfig(hue=0.6), "hue"),
        (lambda: PhotometricConfig(blur_kernel=4), "blur_kernel"),
        (lambda: PhotometricConfig(blur_sigma=(2.0, 0.1)), "blur_sigma"),
    ],
)
def test_bad_arguments_raise(build: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must"):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "image",
    [
        torch.rand(3, 8, 8),
        torch.zeros(1, 8, 8, dtype=torch.uint8),
        torch.zeros(8, 8, 3, dtype=torch.uint8),
        torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
        torch.zeros(3, 0, 8, dtype=torch.uint8),
        [[0]],
    ],
)
def test_bad_images_raise(image: object) -> None:
    for transform in (AlignedTwoViewTransform(8), SingleViewTransform(8), EvalTransform(8)):
        with pytest.raises(ValueError, match="expected a uint8 image tensor"):
            transform(image, seeded(0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("images", "dtype"),
    [
        (torch.rand(2, 3, 4, 4), torch.float32),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), torch.float32),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.float32),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.int32),
    ],
)
def test_normalize_batch_rejects_bad_input(images: torch.Tensor, dtype: torch.dtype) -> None:
    with pytest.raises(ValueError):
        normalize_batch(images, dtype=dtype)


def test_reprs_name_the_settings() -> None:
    assert "mode='same'" in repr(AlignedTwoViewTransform(32, mode="same"))
    assert "resize_to=37" in repr(EvalTransform(32))
    assert "size=32" in repr(SingleViewTransform(32))
    assert EvalTransform(224).resize_to == 256


def test_two_crop_transform_gives_independent_seeded_views() -> None:
    from scarce.data.transforms import SingleViewTransform, TwoCropTransform

    transform = TwoCropTransform(SingleViewTransform(24))
    image = torch.randint(0, 256, (3, 60, 80), dtype=torch.uint8)
    first, second = transform(image, torch.Generator().manual_seed(5))
    assert first.shape == second.shape == (3, 24, 24) and first.dtype == torch.uint8
    assert not torch.equal(first, second)  # independent crops and colours
    again = transform(image, torch.Generator().manual_seed(5))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)
