"""MIM-JEPA's options beyond the paper (issue: make MIM-JEPA learn at small scale): top-K block
targets (data2vec 2.0), a visible-only context encoder (I-JEPA / MAE), a predict mask (multi-block)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scarce.config import load_config
from scarce.data.transforms import normalize_batch
from scarce.errors import ConfigError
from scarce.masking import equalize_keep_counts
from scarce.methods.base import Batch
from scarce.methods.mimjepa import MIMJEPA, average_top_blocks, masked_smooth_l1
from scarce.models import build_predictor, create_encoder
from scarce.models.layers import token_layer_norm
from scarce.models.transformer import gather_visible, scatter_visible
from scarce.pretrain import pretrain
from tests.helpers import TINY_OVERRIDES, needs_data, random_keep_mask


def _images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_average_top_blocks_hand_computed() -> None:
    # one sample, three tokens, one channel: block a = [0, 0, 3] -> mean 1, biased var 2 -> [-1, -1, 2] / sqrt(2)
    # block b = [1, 2, 3] -> mean 2, var 2/3 -> [-1, 0, 1] / sqrt(2/3)
    block_a = torch.tensor([[[0.0], [0.0], [3.0]]])
    block_b = torch.tensor([[[1.0], [2.0], [3.0]]])
    expected_a = torch.tensor([-1.0, -1.0, 2.0]) / math.sqrt(2 + 1e-5)
    expected_b = torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3 + 1e-5)
    averaged = average_top_blocks([block_a, block_b])
    torch.testing.assert_close(averaged[0, :, 0], (expected_a + expected_b) / 2)
    assert average_top_blocks([block_a]) is block_a  # K = 1: the last block as it is


def test_top_k_targets_are_the_normalised_mean_of_the_last_k_blocks() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny", depth=3)
    method = MIMJEPA(encoder, build_predictor(encoder.config), target_layers=2).eval()
    view = normalize_batch(_images())
    probe_tokens, targets = method.targets(view)
    with torch.no_grad():
        blocks = [method.target_encoder.forward_intermediates(view, indices=[index])[0] for index in (1, 2)]
        normalised = [
            (b - b.mean(1, keepdim=True)) / torch.sqrt(b.var(1, unbiased=False, keepdim=True) + 1e-5) for b in blocks
        ]
        expected = F.layer_norm((normalised[0] + normalised[1]) / 2, (encoder.config.embed_dim,))
    torch.testing.assert_close(targets, expected, atol=1e-5, rtol=1e-5)
    # the online probe keeps the last block's LayerNorm-ed tokens, as evaluation sees them
    torch.testing.assert_close(probe_tokens, token_layer_norm(method.target_encoder(view)))
    one_block = MIMJEPA(copy.deepcopy(encoder), build_predictor(encoder.config)).eval()
    assert not torch.allclose(one_block.targets(view)[1], targets)
    with pytest.raises(ValueError, match="target_layers"):
        MIMJEPA(encoder, build_predictor(encoder.config), target_layers=4)


def test_target_layers_beyond_depth_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="target_layers 3 exceeds the encoder's depth 2"):
        load_config("scott-tiny", ["mimjepa.target_layers=3"])


def test_visible_only_encoder_equals_full_when_nothing_is_masked() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny").eval()
    images = normalize_batch(_images())
    keep_all = torch.ones(4, 64, dtype=torch.bool)  # 32 px at stride 4: 8x8 tokens
    torch.testing.assert_close(encoder(images, keep_all, visible_only=True), encoder(images))
    torch.testing.assert_close(encoder(images, keep_all), encoder(images))


def test_visible_only_encoder_runs_the_transformer_on_the_visible_tokens() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny").eval()
    keep = random_keep_mask(4, (8, 8))
    kept = int(keep[0].sum())
    seen: list[tuple[int, ...]] = []
    hook = encoder.transformer.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
    visible = encoder(normalize_batch(_images()), keep, visible_only=True)
    hook.remove()
    assert seen == [(4, kept, 64)] and visible.shape == (4, kept, 64)
    # the visible tokens do not depend on the pixels of masked cells (SCOTT's sparse tokenizer)
    images = _images()
    changed = images.clone()
    masked_pixels = (~keep).view(4, 1, 8, 8).repeat_interleave(4, 2).repeat_interleave(4, 3).expand(-1, 3, -1, -1)
    changed[masked_pixels] = 255 - changed[masked_pixels]
    again = encoder(normalize_batch(changed), keep, visible_only=True)
    torch.testing.assert_close(again, encoder(normalize_batch(images), keep, visible_only=True))


def test_gather_scatter_and_equalised_counts() -> None:
    tokens = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    keep = torch.tensor([[True, False, True, True], [False, True, True, False]])
    with pytest.raises(ValueError, match=r"same number of tokens, got \[2, 3\]"):
        gather_visible(tokens, keep)
    equal = equalize_keep_counts(keep, torch.Generator().manual_seed(0))
    assert equal.sum(dim=1).tolist() == [2, 2] and not (equal & ~keep).any()  # a subset of what was visible
    assert equal[1].tolist() == keep[1].tolist()  # the smallest sample keeps all of its tokens
    visible = gather_visible(tokens, equal)
    expected = tokens[equal].view(2, 2, 1)
    assert torch.equal(visible, expected)
    assert torch.equal(scatter_visible(visible, equal), torch.where(equal[..., None], tokens, 0.0))
    assert equalize_keep_counts(equal) is equal
    # a uniformly random subset, not the first tokens in raster order: the last visible token survives too
    kept_last = [bool(equalize_keep_counts(keep, torch.Generator().manual_seed(seed))[0, 3]) for seed in range(200)]
    assert 0.5 < sum(kept_last) / 200 < 0.85  # 2 of 3 kept: 2/3 expected


def test_visible_only_training_step() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny")
    with pytest.raises(ValueError, match="masked_input='replace'"):
        MIMJEPA(encoder, build_predictor(encoder.config), context="visible")
    method = MIMJEPA(encoder, build_predictor(encoder.config, masked_input="replace"), context="visible").train()
    batch = Batch(views=[_images(), _images(seed=1)], keep_mask=random_keep_mask(4, (8, 8)))
    inputs: list[torch.Tensor] = []
    hook = method.predictor.transformer.blocks[0].register_forward_pre_hook(lambda _, args: inputs.append(args[0]))
    output = method.training_step(batch)
    hook.remove()
    output.loss.backward()
    assert torch.isfinite(output.loss)
    assert method.context_encoder.tokenizer.conv1.weight.grad is not None
    assert method.predictor.transformer.mask_token.grad is not None  # the predictor fills the masked positions
    # the predictor sees N tokens again: masked positions are its mask token plus the position embedding
    assert inputs[0].shape == (4, 64, 64)


def test_predict_mask_restricts_the_loss() -> None:
    prediction = torch.zeros(1, 4, 1)
    target = torch.tensor([[[1.0], [3.0], [5.0], [7.0]]])
    keep = torch.tensor([[True, False, False, False]])
    predict = torch.tensor([[False, True, False, True]])
    # tokens 1 and 3: smooth-L1 of 3 and 7 is 2.5 and 6.5; token 2 is neither seen nor predicted
    assert masked_smooth_l1(prediction, target, keep, predict_mask=predict).item() == pytest.approx(4.5)
    assert masked_smooth_l1(prediction, target, keep).item() == pytest.approx((2.5 + 4.5 + 6.5) / 3)


@needs_data
def test_every_lever_pretrains_one_epoch_on_real_images(tmp_path: Path) -> None:
    levers = ["masking.kind=multiblock", "mimjepa.context=visible", "mimjepa.target_layers=2", "schedule.epochs=1"]
    config = load_config("scott-tiny", [*TINY_OVERRIDES, *levers])
    result = pretrain(config, tmp_path / "run", show_progress=False, log=lambda _: None)
    assert result.status == "finished" and result.steps_done == 256 // 16
