"""InfoNCE (MoCo v2), NT-Xent (SimCLR, also gathered across 2 gloo ranks), BYOL's loss, all-gather."""

from __future__ import annotations

import datetime
import math
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scarce.methods.losses import byol_loss, concat_all_gather, info_nce, nt_xent


def _cross_entropy_first(logits: list[float]) -> float:
    """``-log softmax(logits)[0]`` in plain python."""
    return -logits[0] + math.log(sum(math.exp(value) for value in logits))


# ----------------------------------------------------------------------------------------- InfoNCE


def test_info_nce_hand_computed() -> None:
    # unnormalised on purpose: rows normalise to q = [0.6, 0.8], [1, 0]; k = [0.6, 0.8], [0, 1];
    # queue rows [1, 0], [0, 1], [0.6, -0.8]
    query = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    key = torch.tensor([[0.6, 0.8], [0.0, 2.0]])
    queue = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.6, -0.8]])
    temperature = 0.5
    # sample 0: q.k = 1; q.queue = 0.6, 0.8, 0.36 - 0.64 = -0.28
    # sample 1: q.k = 0; q.queue = 1, 0, 0.6
    sample0 = _cross_entropy_first([1.0 / temperature, 0.6 / temperature, 0.8 / temperature, -0.28 / temperature])
    sample1 = _cross_entropy_first([0.0 / temperature, 1.0 / temperature, 0.0 / temperature, 0.6 / temperature])
    expected = (sample0 + sample1) / 2
    assert info_nce(query, key, queue, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_gradient_flows_only_into_the_query() -> None:
    query = torch.randn(4, 8, requires_grad=True)
    key = torch.randn(4, 8, requires_grad=True)
    queue = torch.randn(16, 8, requires_grad=True)
    info_nce(query, key, queue, 0.2).backward()
    assert query.grad is not None and torch.count_nonzero(query.grad) > 0
    assert key.grad is None
    assert queue.grad is None


def test_info_nce_aligned_key_beats_misaligned_key() -> None:
    e1, e2, e3 = torch.eye(3)
    query = e1[None]
    queue = torch.stack([e2, e3, -e2, -e3])  # all orthogonal to the query
    aligned = info_nce(query, e1[None], queue, 0.2).item()
    misaligned = info_nce(query, e2[None], queue, 0.2).item()
    assert aligned == pytest.approx(-5.0 + math.log(math.exp(5.0) + 4))
    assert misaligned == pytest.approx(math.log(5.0))  # every logit 0
    assert aligned < misaligned


def test_info_nce_with_an_empty_queue_is_zero() -> None:
    assert info_nce(torch.randn(3, 4), torch.randn(3, 4), torch.empty(0, 4), 0.2).item() == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------ NT-Xent


def _nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's eq. 1 with python loops over the 2B samples."""
    rows = [[float(v) for v in row] for row in torch.cat([z1, z2]).tolist()]
    unit = [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in rows]
    n = len(unit)
    batch = n // 2

    def sim(a: int, b: int) -> float:
        return sum(x * y for x, y in zip(unit[a], unit[b], strict=True))

    total = 0.0
    for a in range(n):
        positive = a + batch if a < batch else a - batch
        denominator = sum(math.exp(sim(a, c) / temperature) for c in range(n) if c != a)
        total += -sim(a, positive) / temperature + math.log(denominator)
    return total / n


@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_nt_xent_matches_brute_force_reference(temperature: float) -> None:
    z1, z2 = torch.randn(4, 5), torch.randn(4, 5)
    expected = _nt_xent_reference(z1, z2, temperature)
    assert nt_xent(z1, z2, temperature).item() == pytest.approx(expected, rel=1e-5)
    assert nt_xent(z1, z2, temperature, gather=False).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_is_symmetric_and_scale_invariant() -> None:
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    loss = nt_xent(z1, z2, 0.1)
    torch.testing.assert_close(nt_xent(z2, z1, 0.1), loss)
    torch.testing.assert_close(nt_xent(3.0 * z1, 0.5 * z2, 0.1), loss)


def test_nt_xent_temperature() -> None:
    z1 = torch.randn(4, 8)
    # identical views: each term exp((s_c - 1) / T) with s_c < 1 shrinks as T falls
    losses = [nt_xent(z1, z1.clone(), t).item() for t in (1.0, 0.5, 0.1)]
    assert losses[0] > losses[1] > losses[2]
    # T -> infinity: every logit equal, loss = log(2B - 1)
    assert nt_xent(z1, torch.randn(4, 8), 1e6).item() == pytest.approx(math.log(7), rel=1e-5)


def test_nt_xent_gradient_matches_finite_differences() -> None:
    z1 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))


def test_losses_compute_in_float32_under_autocast() -> None:
    z1, z2 = torch.randn(8, 16).bfloat16(), torch.randn(8, 16).bfloat16()
    queue = torch.randn(32, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [nt_xent(z1, z2, 0.1), info_nce(z1, z2, queue, 0.2), byol_loss(z1, z2)]
    expected = [nt_xent(z1.float(), z2.float(), 0.1), info_nce(z1.float(), z2.float(), queue.float(), 0.2)]
    expected.append(byol_loss(z1.float(), z2.float()))
    for loss, reference in zip(losses, expected, strict=True):
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, reference)


# ------------------------------------------------------------------ NT-Xent across 2 gloo processes

WORLD_SIZE = 2
LOCAL_BATCH = 3
DIM = 4
TEMPERATURE = 0.2


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    shape = (WORLD_SIZE * LOCAL_BATCH, DIM)
    z1 = torch.randn(shape, generator=generator, dtype=torch.float64)
    z2 = torch.randn(shape, generator=generator, dtype=torch.float64)
    return z1, z2


def _rank_worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        full1, full2 = _global_batch()
        z1 = full1[rows].clone().requires_grad_(True)
        z2 = full2[rows].clone().requires_grad_(True)
        loss = nt_xent(z1, z2, TEMPERATURE)
        loss.backward()
        local_only = nt_xent(z1.detach(), z2.detach(), TEMPERATURE, gather=False)
        gathered = concat_all_gather(z1 * 1.0)
        torch.save(
            {
                "loss": loss.detach(),
                "grad1": z1.grad,
                "grad2": z2.grad,
                "local_only": local_only,
                "gathered": gathered,
                "gathered_requires_grad": gathered.requires_grad,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nt_xent_gathered_over_two_ranks_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loss: the single-process loss on the global batch is the mean of the ranks' losses.
    Gradient: the all-gather's backward sums the gradients of every rank's loss, so the gradient on
    a rank's rows is d(sum_r L_r)/dz = W * d(L_single)/dz (DDP then divides by W)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    mp.spawn(_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]

    full1, full2 = _global_batch()
    z1, z2 = full1.clone().requires_grad_(True), full2.clone().requires_grad_(True)
    single = nt_xent(z1, z2, TEMPERATURE)
    single.backward()
    assert z1.grad is not None and z2.grad is not None

    mean_rank_loss = sum(result["loss"] for result in results) / WORLD_SIZE
    torch.testing.assert_close(mean_rank_loss, single.detach())
    assert not torch.allclose(results[0]["loss"], results[1]["loss"])  # the ranks' anchors differ
    for rank, result in enumerate(results):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        torch.testing.assert_close(result["grad1"], WORLD_SIZE * z1.grad[rows])
        torch.testing.assert_close(result["grad2"], WORLD_SIZE * z2.grad[rows])
        # gather=False: per-rank negatives, exactly one process on the local half
        torch.testing.assert_close(result["local_only"], nt_xent(full1[rows], full2[rows], TEMPERATURE))
        torch.testing.assert_close(result["gathered"], full1)
        assert result["gathered_requires_grad"] is False


def test_concat_all_gather_is_a_detached_identity_without_distributed() -> None:
    assert not dist.is_initialized()
    x = torch.randn(3, 2, requires_grad=True)
    out = concat_all_gather(x * 2.0)
    torch.testing.assert_close(out, x.detach() * 2.0)
    assert not out.requires_grad


# -------------------------------------------------------------------------------------------- BYOL


def test_byol_loss_hand_computed() -> None:
    prediction = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, 1.0], [-4.0, 3.0]])
    # cosines: 1 / sqrt(2) and (-12 + 12) / 25 = 0
    expected = ((2.0 - 2.0 / math.sqrt(2.0)) + 2.0) / 2
    assert byol_loss(prediction, target).item() == pytest.approx(expected, rel=1e-6)


def test_byol_loss_extremes() -> None:
    p = torch.randn(5, 7)
    assert byol_loss(p, 2.5 * p).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(p, -0.3 * p).item() == pytest.approx(4.0, rel=1e-6)


def test_byol_loss_stops_the_gradient_into_the_target() -> None:
    prediction = torch.randn(4, 6, requires_grad=True)
    target = torch.randn(4, 6, requires_grad=True)
    byol_loss(prediction, target).backward()
    assert prediction.grad is not None and torch.count_nonzero(prediction.grad) > 0
    assert target.grad is None


def test_losses_reject_bad_shapes() -> None:
    with pytest.raises(ValueError):
        nt_xent(torch.randn(2, 3), torch.randn(3, 3), 0.1)
    with pytest.raises(ValueError):
        info_nce(torch.randn(2, 3), torch.randn(2, 3), torch.randn(5, 4), 0.2)
    with pytest.raises(ValueError):
        byol_loss(torch.randn(2, 3), torch.randn(2, 4))
