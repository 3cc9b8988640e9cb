"""Encoder and predictor: shapes, parity counts, position embedding, init, masking, no hidden state."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from pydantic import ValidationError

from scarce.models import (
    EncoderConfig,
    build_encoder,
    build_predictor,
    count_parameters,
    create_encoder,
    list_presets,
    preset_config,
    sincos_pos_embed_2d,
)
from scarce.models.transformer import swiglu_hidden_dim
from tests.helpers import random_keep_mask

TINY = {"embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.mark.parametrize("img_size", [32, 64, 96, 224])
@pytest.mark.parametrize("stride", [16, 8, 4])
@pytest.mark.parametrize("tokenizer", ["scott", "vit"])
def test_encoder_output_shape(tokenizer: str, img_size: int, stride: int) -> None:
    encoder = build_encoder(tokenizer, img_size=img_size, stride=stride, **TINY).eval()
    grid = img_size // stride
    assert encoder.grid_size == (grid, grid)
    assert encoder.num_tokens == grid * grid
    assert encoder.embed_dim == 32
    images = torch.randn(1, 3, img_size, img_size)
    with torch.no_grad():
        assert encoder(images).shape == (1, grid * grid, 32)
        keep = random_keep_mask(1, (grid, grid)) if grid * grid >= 2 else None
        assert encoder(images, keep).shape == (1, grid * grid, 32)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("scott-paper", 22_447_680),
        ("scott-paper-d7", 13_600_320),
        ("scott-paper-d192", 5_920_128),
        ("vit-paper", 21_529_344),
    ],
)
def test_trainable_parameter_counts_match_spec(preset: str, expected: int) -> None:
    encoder = create_encoder(preset)
    assert count_parameters(encoder) == expected
    # the frozen position embedding is a buffer, not a parameter, and not saved in checkpoints
    assert "transformer.pos_embed" not in dict(encoder.named_parameters())
    assert "transformer.pos_embed" not in encoder.state_dict()


def test_paper_block_and_stem_counts() -> None:
    encoder = create_encoder("scott-paper")
    assert count_parameters(encoder.tokenizer) == 1_213_632
    assert all(count_parameters(block) == 1_769_472 for block in encoder.transformer.blocks)
    assert encoder.transformer.mask_token.numel() == 384


def test_predictor_parameter_count_matches_spec() -> None:
    assert count_parameters(build_predictor(preset_config("scott-paper"))) == 5_457_408


@pytest.mark.parametrize(("dim", "hidden"), [(192, 512), (256, 640), (384, 1024)])
def test_swiglu_hidden_dim(dim: int, hidden: int) -> None:
    assert swiglu_hidden_dim(dim) == hidden


def test_position_embedding_matches_formula() -> None:
    dim, grid = 16, (5, 7)
    embed = sincos_pos_embed_2d(dim, grid)
    assert embed.shape == (35, dim)
    quarter = dim // 4
    for row, col in [(0, 0), (2, 3), (4, 6), (1, 5)]:
        token = embed[row * grid[1] + col]
        for i in range(quarter):
            omega = 1.0 / 10000 ** (i / quarter)
            assert token[i].item() == pytest.approx(math.sin(row * omega), abs=1e-6)
            assert token[quarter + i].item() == pytest.approx(math.cos(row * omega), abs=1e-6)
            assert token[2 * quarter + i].item() == pytest.approx(math.sin(col * omega), abs=1e-6)
            assert token[3 * quarter + i].item() == pytest.approx(math.cos(col * omega), abs=1e-6)


def test_position_embedding_is_added_and_constant() -> None:
    encoder = build_encoder("scott", img_size=32, stride=4, **TINY)
    expected = sincos_pos_embed_2d(32, (8, 8))
    torch.testing.assert_close(encoder.transformer.pos_embed[0], expected)
    assert not encoder.transformer.pos_embed.requires_grad


def test_init_statistics() -> None:
    torch.manual_seed(1)
    encoder = create_encoder("scott-paper")
    blocks = encoder.transformer.blocks
    qkv_std = torch.cat([b.attn.qkv.weight.flatten() for b in blocks]).std().item()
    assert qkv_std == pytest.approx(0.02, rel=0.03)
    for layer_id, block in enumerate(blocks, start=1):
        expected = 0.02 / math.sqrt(2 * layer_id)
        assert block.attn.proj.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert block.ffn.fc_out.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert block.ffn.fc_in.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert block.attn.qkv.bias is None and block.attn.proj.bias is None
        assert not list(block.pre_norm.parameters()) and not list(block.norm.parameters())
    assert encoder.transformer.mask_token.abs().max().item() < 1e-5


@pytest.mark.parametrize("init", ["default", "reference"])
def test_predictor_rescale(init: str) -> None:
    config = preset_config("scott-paper")
    predictor = build_predictor(config, init=init)  # type: ignore[arg-type]
    for layer_id, block in enumerate(predictor.transformer.blocks, start=1):
        factor = math.sqrt(2 * (config.depth + layer_id))
        if init == "reference":
            factor *= math.sqrt(2 * layer_id)
        assert block.attn.proj.weight.std().item() == pytest.approx(0.02 / factor, rel=0.05)


def test_no_final_norm_and_cct_block_order() -> None:
    """A block normalises its residual stream between attention and FFN; the encoder output is
    not normalised (per-token mean/std differ from 0/1)."""
    encoder = build_encoder("scott", img_size=32, stride=4, embed_dim=32, depth=2, num_heads=2).eval()
    block = encoder.transformer.blocks[0]
    x = torch.randn(2, 64, 32) * 3 + 1
    with torch.no_grad():
        after_attn = x + block.attn(block.pre_norm(x))
        normalised = torch.nn.functional.layer_norm(after_attn, (32,))
        expected = normalised + block.ffn(normalised)
        torch.testing.assert_close(block(x), expected)
        out = encoder(torch.randn(2, 3, 32, 32))
    assert out.std(dim=-1).sub(1).abs().max() > 1e-2


@pytest.mark.parametrize("tokenizer", ["scott", "vit"])
def test_masked_tokens_get_the_mask_token(tokenizer: str) -> None:
    encoder = build_encoder(tokenizer, img_size=32, stride=4, **TINY).eval()
    images = torch.randn(2, 3, 32, 32)
    keep = random_keep_mask(2, (8, 8))
    tokens, grid = encoder.tokenize(images, keep)
    embedded = encoder.transformer.embed(tokens, keep, grid)
    pos = encoder.transformer.pos_embed.expand(2, -1, -1)
    mask_token = encoder.transformer.mask_token[0, 0]
    torch.testing.assert_close(embedded[~keep], (pos + mask_token)[~keep])
    torch.testing.assert_close(embedded[keep], (tokens + pos)[keep])


@pytest.mark.parametrize("stride", [16, 8, 4])
def test_encoder_output_ignores_masked_pixels(stride: int) -> None:
    """End to end: the whole encoder output is unchanged when masked pixels change."""
    encoder = build_encoder("scott", img_size=64, stride=stride, **TINY).eval()
    grid = 64 // stride
    keep = random_keep_mask(2, (grid, grid), seed=3)
    images = torch.randn(2, 3, 64, 64)
    pixel_keep = keep.view(2, 1, grid, 1, grid, 1).expand(2, 1, grid, stride, grid, stride).reshape(2, 1, 64, 64)
    altered = torch.where(pixel_keep, images, torch.randn_like(images) * 5)
    with torch.no_grad():
        assert (encoder(images, keep) - encoder(altered, keep)).abs().max().item() < 1e-5


def test_registers_are_dropped_at_output() -> None:
    encoder = build_encoder("scott", img_size=32, stride=4, num_registers=4, **TINY).eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 64, 32)
        assert encoder.attention_maps(torch.randn(2, 3, 32, 32)).shape == (2, 2, 68, 68)
    assert count_parameters(encoder) == count_parameters(build_encoder("scott", img_size=32, stride=4, **TINY)) + 4 * 32


def test_attention_maps_match_fused_attention() -> None:
    encoder = build_encoder("scott", img_size=32, stride=4, embed_dim=32, depth=3, num_heads=4).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = encoder.attention_maps(images, block=1)
        assert maps.shape == (2, 4, 64, 64)
        torch.testing.assert_close(maps.sum(-1), torch.ones(2, 4, 64))
        # explicit attention reproduces the fused SDPA output of that block
        tokens, grid = encoder.tokenize(images)
        x = encoder.transformer.blocks[0](encoder.transformer.embed(tokens, None, grid))
        block = encoder.transformer.blocks[1]
        fused = block.attn(block.pre_norm(x))
        explicit, _ = block.attn(block.pre_norm(x), return_attention=True)
        torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-5)


def test_forward_intermediates_last_equals_forward() -> None:
    encoder = build_encoder("scott", img_size=32, stride=4, embed_dim=32, depth=3, num_heads=2).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outputs = encoder.forward_intermediates(images, indices=[0, -1])
        assert len(outputs) == 2
        torch.testing.assert_close(outputs[-1], encoder(images))


def test_predictor_masked_input_modes() -> None:
    config = preset_config("scott-tiny")
    context = torch.randn(2, 64, 64)
    keep = random_keep_mask(2, (8, 8))
    altered = torch.where(keep[..., None], context, torch.randn_like(context))
    replace = build_predictor(config, masked_input="replace").eval()
    keep_mode = build_predictor(config, masked_input="keep").eval()
    with torch.no_grad():
        out = replace(context, keep)
        assert out.shape == (2, 64, 64)
        # "replace": masked context positions get the mask token, so their values do not matter
        torch.testing.assert_close(replace(altered, keep), out)
        # "keep" (default): the whole context sequence is used
        assert (keep_mode(altered, keep) - keep_mode(context, keep)).abs().max() > 1e-3


def test_no_hidden_state_between_threads() -> None:
    """Two encoders with different masks, interleaved in two threads, equal sequential runs.
    (The official code keeps the mask in a module-level global and fails this.)"""
    torch.manual_seed(0)
    encoders = [build_encoder("scott", img_size=64, stride=8, **TINY).eval() for _ in range(2)]
    images = torch.randn(2, 3, 64, 64)
    masks = [random_keep_mask(2, (8, 8), ratio=0.75, seed=s) for s in (1, 2)]
    with torch.no_grad():
        expected = [enc(images, mask) for enc, mask in zip(encoders, masks, strict=True)]
    results: list[list[torch.Tensor]] = [[], []]
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        with torch.no_grad():
            for _ in range(20):
                results[index].append(encoders[index](images, masks[index]))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(2):
        assert len(results[index]) == 20
        for out in results[index]:
            torch.testing.assert_close(out, expected[index], rtol=0, atol=0)


def test_bad_keep_mask_and_images_raise_clear_errors() -> None:
    encoder = build_encoder("scott", img_size=32, stride=4, **TINY)
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(TypeError, match="bool"):
        encoder(images, torch.ones(2, 64))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        encoder(images, torch.ones(2, 63, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple of the stride"):
        encoder(torch.randn(2, 3, 30, 30))
    with pytest.raises(ValueError, match="expected images"):
        encoder(torch.randn(3, 32, 32))


def test_config_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="divisible by num_heads"):
        EncoderConfig(embed_dim=30, num_heads=4)
    with pytest.raises(ValidationError, match="multiple of the stride"):
        EncoderConfig(img_size=100, stride=16)
    with pytest.raises(ValidationError, match="embed_dimm"):
        EncoderConfig(embed_dimm=384)  # type: ignore[call-arg]
    with pytest.raises(KeyError, match="unknown encoder preset"):
        create_encoder("scott-huge")


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_builds_and_runs(name: str) -> None:
    config = preset_config(name)
    encoder = create_encoder(name, depth=1).eval()  # one block keeps the sweep fast
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, config.img_size, config.img_size))
    assert out.shape == (1, encoder.num_tokens, config.embed_dim)
    assert torch.isfinite(out).all()


def test_reference_predictor_head_keeps_pytorch_default_init() -> None:
    config = preset_config("scott-paper")
    default_head = build_predictor(config).head[2].weight
    reference_head = build_predictor(config, init="reference").head[2].weight
    assert default_head.std().item() == pytest.approx(0.02, rel=0.05)
    # PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std = 1/sqrt(3 fan_in)
    assert reference_head.std().item() == pytest.approx(1 / math.sqrt(3 * 384), rel=0.05)
