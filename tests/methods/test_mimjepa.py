"""MIM-JEPA: the loss, parameter groups, EMA target, one step."""

from __future__ import annotations

import copy

import pytest
import torch

from scarce.data.transforms import normalize_batch
from scarce.methods.base import Batch
from scarce.methods.mimjepa import MIMJEPA, center_targets, masked_smooth_l1
from scarce.models import build_predictor, create_encoder
from scarce.models.layers import token_layer_norm
from tests.helpers import random_keep_mask


def test_masked_smooth_l1_hand_computed() -> None:
    prediction = torch.zeros(2, 3, 2)
    target = torch.tensor([[[0.5, 0.5], [2.0, 0.0], [9.0, 9.0]], [[1.0, -1.0], [0.0, 0.0], [3.0, 3.0]]])
    keep = torch.tensor([[False, False, True], [False, True, True]])
    # sample 0: masked tokens 0 and 1: token 0: 0.5*0.25 = 0.125 per dim; token 1: (1.5 + 0)/2 = 0.75
    # sample 1: masked token 0: both dims 0.5 -> 0.5
    expected = ((0.125 + 0.75) / 2 + 0.5) / 2
    assert masked_smooth_l1(prediction, target, keep).item() == pytest.approx(expected)


def test_visible_tokens_contribute_exactly_zero() -> None:
    torch.manual_seed(0)
    prediction = torch.randn(4, 16, 8, requires_grad=True)
    target = torch.randn(4, 16, 8)
    keep = random_keep_mask(4, (4, 4), ratio=0.5)
    loss = masked_smooth_l1(prediction, target, keep)
    loss.backward()
    assert prediction.grad is not None
    assert torch.count_nonzero(prediction.grad[keep]) == 0
    assert torch.count_nonzero(prediction.grad[~keep]) > 0
    changed = target.clone()
    changed[keep] += 100.0
    assert masked_smooth_l1(prediction, changed, keep).item() == loss.item()


def test_loss_rejects_samples_without_masked_tokens() -> None:
    with pytest.raises(ValueError, match="masked token"):
        masked_smooth_l1(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), torch.ones(1, 4, dtype=torch.bool))


def _method() -> MIMJEPA:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny")
    return MIMJEPA(encoder, build_predictor(encoder.config))


def test_parameter_groups_follow_spec() -> None:
    method = _method()
    decay, no_decay = method.parameter_groups()
    decay_ids = {id(p) for p in decay["params"]}  # type: ignore[union-attr]
    no_decay_ids = {id(p) for p in no_decay["params"]}  # type: ignore[union-attr]
    assert id(method.context_encoder.transformer.mask_token) in decay_ids  # the mask token decays
    assert id(method.predictor.head[2].bias) in no_decay_ids
    assert id(method.predictor.head[1].weight) in no_decay_ids  # 1-D LayerNorm weight
    target_ids = {id(p) for p in method.target_encoder.parameters()}
    assert not target_ids & (decay_ids | no_decay_ids)
    trainable = [p for module in method.trainable_modules().values() for p in module.parameters()]
    assert len(decay_ids) + len(no_decay_ids) == len(trainable)
    assert no_decay["weight_decay"] == 0.0 and no_decay["wd_scale"] == 0.0


def test_target_encoder_is_frozen_eval_copy() -> None:
    method = _method()
    method.train()
    assert not method.target_encoder.training
    assert all(not p.requires_grad for p in method.target_encoder.parameters())
    for online, target in zip(method.context_encoder.parameters(), method.target_encoder.parameters(), strict=True):
        assert torch.equal(online, target) and online.data_ptr() != target.data_ptr()


def test_training_step_gradients_reach_context_and_predictor_only() -> None:
    method = _method().train()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    batch = Batch(views=[images, images.clone()], keep_mask=random_keep_mask(4, (8, 8)))
    output = method.training_step(batch)
    output.loss.backward()
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert output.probe_tokens is not None and output.probe_tokens.shape == (4, 64, 64)
    assert all(p.grad is None for p in method.target_encoder.parameters())
    assert method.context_encoder.tokenizer.conv1.weight.grad is not None
    assert method.predictor.head[2].weight.grad is not None
    # targets are normalised tokens of the full second view
    torch.testing.assert_close(output.probe_tokens.mean(-1), torch.zeros(4, 64), atol=1e-5, rtol=0)
    torch.testing.assert_close(token_layer_norm(output.probe_tokens), output.probe_tokens, atol=1e-4, rtol=0)


def test_update_ema_moves_target_towards_context() -> None:
    method = _method()
    with torch.no_grad():
        for param in method.context_encoder.parameters():
            param.add_(1.0)
    before = method.target_encoder.transformer.mask_token.clone()
    method.update_ema(0.75)
    online = method.context_encoder.transformer.mask_token
    torch.testing.assert_close(method.target_encoder.transformer.mask_token, 0.75 * before + 0.25 * online)


def test_center_targets_removes_the_shared_component() -> None:
    from scarce.methods.mimjepa import center_targets

    shared = torch.randn(1, 1, 8)
    targets = shared + 0.1 * torch.randn(4, 16, 8)
    centred = center_targets(targets)
    torch.testing.assert_close(centred.mean(dim=(0, 1)), torch.zeros(8), atol=1e-6, rtol=0)
    torch.testing.assert_close(centred, targets - targets.mean(dim=(0, 1), keepdim=True))


def test_target_centering_option_reaches_the_loss() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny")
    plain = MIMJEPA(encoder, build_predictor(encoder.config))
    centred = MIMJEPA(copy.deepcopy(encoder), copy.deepcopy(plain.predictor), target_centering="batch")
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    batch = Batch(views=[images, images.clone()], keep_mask=random_keep_mask(4, (8, 8)))
    plain.eval(), centred.eval()
    plain_out, centred_out = plain.training_step(batch), centred.training_step(batch)
    assert centred_out.probe_tokens is not None and plain_out.probe_tokens is not None
    # the same targets before centring (the probe's tokens), a different loss after it
    torch.testing.assert_close(centred_out.probe_tokens, plain_out.probe_tokens)
    assert plain_out.probe_tokens.mean(dim=(0, 1)).abs().max() > 1e-2
    torch.testing.assert_close(
        center_targets(plain_out.probe_tokens).mean(dim=(0, 1)), torch.zeros(64), atol=1e-5, rtol=0
    )
    assert centred_out.loss.item() != plain_out.loss.item()
    assert "context_token_std" in plain_out.metrics
    with pytest.raises(ValueError, match="target_centering"):
        MIMJEPA(encoder, plain.predictor, target_centering="ema")  # type: ignore[arg-type]


def test_batch_centred_targets_leave_the_probe_tokens_as_validation_sees_them() -> None:
    """The loss regresses centred targets; the online probe trains on the target encoder's LayerNorm-ed
    tokens, exactly what its validation pass computes (a centred training input would be shifted)."""
    method = _method().train()
    method.target_centering = "batch"
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    batch = Batch(views=[images, images.clone()], keep_mask=random_keep_mask(4, (8, 8)))
    output = method.training_step(batch)
    with torch.no_grad():
        expected = token_layer_norm(method.target_encoder(normalize_batch(images)))
    assert output.probe_tokens is not None
    torch.testing.assert_close(output.probe_tokens, expected)
    assert output.probe_tokens.mean(dim=(0, 1)).abs().max() > 1e-3  # not centred: the test can fail
