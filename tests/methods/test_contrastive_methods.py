"""MoCo v2, SimCLR and BYOL as method classes: steps, queue, momentum networks, shuffle-BN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scarce.methods.base import Batch
from scarce.methods.byol import BYOL
from scarce.methods.losses import byol_loss, info_nce, nt_xent
from scarce.methods.moco import MoCoV2
from scarce.methods.simclr import SimCLR
from scarce.models.backbone import build_backbone
from scarce.models.encoder import EncoderConfig
from scarce.models.resnet import ResNetConfig

SMALL_RESNET = ResNetConfig(arch="resnet18", cifar_stem=False, img_size=32)


def _batch(size: int = 8, pixels: int = 32, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    views = [torch.randint(0, 256, (size, 3, pixels, pixels), dtype=torch.uint8, generator=generator) for _ in range(2)]
    return Batch(views=views, labels=torch.arange(size) % 2)


def _moco(queue_size: int = 16, splits: int = 2) -> MoCoV2:
    return MoCoV2(build_backbone(SMALL_RESNET), queue_size, 0.2, 32, 16, shuffle_bn_splits=splits)


def _simclr() -> SimCLR:
    return SimCLR(build_backbone(SMALL_RESNET), 0.1, 32, 16)


def _byol() -> BYOL:
    return BYOL(build_backbone(SMALL_RESNET), 32, 16, 32)


@pytest.mark.parametrize("make", [_moco, _simclr, _byol], ids=["mocov2", "simclr", "byol"])
def test_step_trains_online_modules_only(make) -> None:  # type: ignore[no-untyped-def]
    method = make()
    method.train()
    output = method(_batch())
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert output.probe_tokens is not None and output.probe_tokens.shape == (8, 1, 512)
    output.loss.backward()
    for name, module in method.trainable_modules().items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert any(bool(g.abs().sum() > 0) for g in grads if g is not None), name
    for _, target in method.ema_pairs():
        assert all(p.grad is None and not p.requires_grad for p in target.parameters())


@pytest.mark.parametrize("make", [_moco, _byol], ids=["mocov2", "byol"])
def test_momentum_update_arithmetic(make) -> None:  # type: ignore[no-untyped-def]
    method = make()
    with torch.no_grad():
        for online, _ in method.ema_pairs():
            for param in online.parameters():
                param.add_(torch.randn_like(param))
    before = [[p.clone() for p in target.parameters()] for _, target in method.ema_pairs()]
    method.update_ema(0.9)
    for (online, target), old in zip(method.ema_pairs(), before, strict=True):
        for new, prior, current in zip(target.parameters(), old, online.parameters(), strict=True):
            torch.testing.assert_close(new, 0.9 * prior + 0.1 * current)


def _perturb_online(method: torch.nn.Module) -> None:
    """Make the online networks differ from their momentum copies (so a mix-up would show)."""
    with torch.no_grad():
        for online, _ in method.ema_pairs():  # type: ignore[operator]
            for param in online.parameters():
                param.add_(0.05 * torch.randn_like(param))


def test_moco_loss_is_info_nce_of_split_bn_queries_keys_and_the_queue_before_enqueue() -> None:
    from scarce.data.transforms import normalize_batch

    method = _moco(queue_size=16, splits=2)
    _perturb_online(method)
    method.train()
    batch = _batch(size=8)
    queue_before = method.queue.clone()
    torch.manual_seed(7)
    output = method(batch)
    # by hand: queries on consecutive halves, keys on halves of the same random permutation
    query_view, key_view = (normalize_batch(view) for view in batch.views)
    queries = method.projector(torch.cat([method.encoder(g) for g in query_view.chunk(2)]).mean(1))
    torch.manual_seed(7)
    order = torch.randperm(8)
    shuffled = torch.cat([method.target_projector(method.target_encoder(g).mean(1)) for g in key_view[order].chunk(2)])
    keys = torch.empty_like(shuffled)
    keys[order] = shuffled
    keys = F.normalize(keys, dim=1)
    torch.testing.assert_close(output.loss, info_nce(queries, keys, queue_before, 0.2))
    # the step enqueued exactly these keys at the start of the queue
    torch.testing.assert_close(method.queue[:8], keys)
    torch.testing.assert_close(method.queue[8:], queue_before[8:])
    assert int(method.queue_pointer) == 8


def test_queue_wraps_around_and_keeps_the_newest_keys() -> None:
    method = _moco(queue_size=6)
    first, second = F.normalize(torch.randn(4, 16), dim=1), F.normalize(torch.randn(4, 16), dim=1)
    method.enqueue(first)
    method.enqueue(second)  # slots 4, 5, then 0, 1
    torch.testing.assert_close(method.queue[[4, 5, 0, 1]], second)
    torch.testing.assert_close(method.queue[[2, 3]], first[2:])
    assert int(method.queue_pointer) == 2
    too_many = F.normalize(torch.randn(9, 16), dim=1)
    method.enqueue(too_many)  # more keys than slots: the newest six survive
    assert sorted(map(tuple, method.queue.tolist())) == sorted(map(tuple, too_many[-6:].tolist()))


def test_shuffle_bn_keys_are_returned_in_input_order() -> None:
    method = _moco(splits=4)
    images = torch.randn(8, 3, 32, 32)
    method.train()
    torch.manual_seed(1)
    keys = method.keys(images)
    # rerun the same permutation by hand: each group normalised by its own batch statistics
    torch.manual_seed(1)
    order = torch.randperm(8)
    groups = images[order].chunk(4)
    shuffled = torch.cat([method.target_projector(method.target_encoder(g).mean(1)) for g in groups])
    expected = torch.empty_like(shuffled)
    expected[order] = shuffled
    torch.testing.assert_close(keys, F.normalize(expected, dim=1))
    # and the grouping matters in training mode (BatchNorm statistics differ from the whole batch)
    whole = F.normalize(method.target_projector(method.target_encoder(images).mean(1)), dim=1)
    assert not torch.allclose(keys, whole, atol=1e-4)


def test_simclr_and_byol_losses_match_their_functions() -> None:
    from scarce.data.transforms import normalize_batch

    batch = _batch(size=4)
    simclr = _simclr().eval()
    both = torch.cat([normalize_batch(v) for v in batch.views])
    z1, z2 = simclr.projector(simclr.encoder(both).mean(1)).chunk(2)
    torch.testing.assert_close(simclr(batch).loss, nt_xent(z1, z2, 0.1))
    byol = _byol()
    _perturb_online(byol)
    byol.eval()
    p1, p2 = byol.predictor(byol.projector(byol.encoder(both).mean(1))).chunk(2)
    t1, t2 = byol.target_projector(byol.target_encoder(both).mean(1)).chunk(2)
    torch.testing.assert_close(byol(batch).loss, byol_loss(p1, t2) + byol_loss(p2, t1))


def test_transformer_encoder_is_a_backbone_too() -> None:
    encoder = build_backbone(EncoderConfig(img_size=32, stride=8, embed_dim=32, depth=1, num_heads=2))
    method = SimCLR(encoder, 0.1, 32, 16)
    output = method(_batch(size=4))
    assert output.probe_tokens is not None and output.probe_tokens.shape == (4, 16, 32)
    output.loss.backward()


def test_one_view_is_refused() -> None:
    batch = _batch(size=4)
    with pytest.raises(ValueError, match="two views"):
        _simclr()(Batch(views=batch.views[:1]))
