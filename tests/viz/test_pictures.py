"""The arrays behind the pictures: PCA maps, attention maps, mask pictures, neighbours."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from scarce.data.transforms import normalize_batch
from scarce.masking import make_mask_generator
from scarce.models import create_encoder
from scarce.viz.attention import attention_from, attention_received
from scarce.viz.masks import HIDDEN_GREY, PREDICT_TINT, mask_pictures, sample_masks
from scarce.viz.neighbours import nearest_neighbours
from scarce.viz.pca import pca_token_maps, upsample_map


def test_pca_channels_are_the_first_three_principal_components() -> None:
    torch.manual_seed(0)
    tokens = torch.randn(4, 16, 8) @ torch.diag(torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2]))
    maps = pca_token_maps(tokens, (4, 4))
    flat = tokens.reshape(-1, 8).double()
    _, _, basis = torch.pca_lowrank(flat, q=8, center=True, niter=8)  # full rank: exact
    expected = ((flat - flat.mean(0)) @ basis[:, :3]).numpy()
    components = maps.components.reshape(-1, 3)
    for index in range(3):  # a component's sign is arbitrary
        assert min(np.abs(components[:, index] - s * expected[:, index]).max() for s in (1, -1)) < 1e-4
    assert np.all(np.diff(maps.explained) <= 0) and maps.explained.sum() <= 1.0


def test_pca_foreground_follows_the_threshold() -> None:
    torch.manual_seed(1)
    tokens = torch.randn(2, 36, 16)
    for threshold in (0.0, 0.5):
        maps = pca_token_maps(tokens, (6, 6), threshold=threshold)
        assert np.array_equal(maps.foreground, maps.components[..., 0] > threshold)
        assert np.all(maps.rgb[~maps.foreground] == 0.0)
        assert maps.rgb.min() >= 0.0 and maps.rgb.max() <= 1.0
    assert pca_token_maps(tokens, (6, 6)).foreground.mean() <= 0.5  # sign fixed: foreground the smaller part
    with pytest.raises(ValueError, match="does not hold 36 tokens"):
        pca_token_maps(tokens, (5, 6))


def test_upsample_map_repeats_cells() -> None:
    grid = np.arange(4).reshape(2, 2)
    assert upsample_map(grid, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


@pytest.mark.parametrize("registers", [0, 2])
def test_attention_maps_sum_to_one_per_head(registers: int) -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny", num_registers=registers).eval()
    images = normalize_batch(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    received = attention_received(encoder, images)
    from_token = attention_from(encoder, images, token=27)
    assert received.shape == from_token.shape == (2, 2, 8, 8)  # [B, heads, H', W']
    torch.testing.assert_close(received.sum(dim=(2, 3)), torch.ones(2, 2))
    torch.testing.assert_close(from_token.sum(dim=(2, 3)), torch.ones(2, 2))
    if registers == 0:  # no renormalisation: the plain mean over queries / the plain row
        attention = encoder.attention_maps(images)
        torch.testing.assert_close(received.flatten(2), attention.mean(dim=2))
        torch.testing.assert_close(from_token.flatten(2), attention[:, :, 27])
    with pytest.raises(ValueError, match="token must be in"):
        attention_from(encoder, images, token=64)


@pytest.mark.parametrize("kind", ["blockwise", "multiblock"])
def test_mask_pictures_equal_the_generators_masks(kind: str) -> None:
    generator = make_mask_generator(kind, (6, 6), 0.6)
    keep, predict = sample_masks(generator, 3, seed=5)
    rng = random.Random(5)
    for index in range(3):
        expected_keep, expected_predict = generator.sample_masks(rng)
        assert np.array_equal(keep[index], expected_keep) and np.array_equal(predict[index], expected_predict)
    images = torch.randint(0, 256, (3, 3, 96, 96), dtype=torch.uint8)
    pictures = mask_pictures(images, keep, predict, (6, 6))
    pixels = images.permute(0, 2, 3, 1).float().numpy() / 255.0
    seen = np.repeat(np.repeat(keep.reshape(3, 6, 6), 16, axis=1), 16, axis=2)
    predicted = np.repeat(np.repeat(predict.reshape(3, 6, 6), 16, axis=1), 16, axis=2)
    assert np.array_equal(pictures.context[seen], pixels[seen])
    assert np.all(pictures.context[~seen] == HIDDEN_GREY)
    np.testing.assert_allclose(pictures.predicted[predicted], 0.5 * pixels[predicted] + 0.5 * PREDICT_TINT)
    assert np.array_equal(pictures.predicted[~predicted], pixels[~predicted])


def test_nearest_neighbours_are_the_most_similar() -> None:
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -0.5]])
    similarities, indices = nearest_neighbours(gallery[:2], gallery, k=2, exclude_self=True)
    assert indices.tolist() == [[2, 1], [2, 0]]
    assert similarities[0, 0].item() == pytest.approx(2**-0.5)
    _, with_self = nearest_neighbours(gallery[:1] * 3, gallery, k=1)
    assert with_self.tolist() == [[0]]
