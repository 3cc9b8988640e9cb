"""Losses of the contrastive / siamese baselines the S3L study compares (Cao & Wu, "Rethinking
Self-supervised Learning: Small is Beautiful", arXiv 2103.13559): MoCo v2's InfoNCE, SimCLR's
NT-Xent and BYOL's normalised regression loss, plus the no-grad all-gather MoCo needs for its queue.

All functions are pure (no module state). Similarities are computed in at least float32, with
autocast disabled inside the loss (under autocast the embeddings may arrive in bf16/fp16, and a
softmax over thousands of logits divided by a small temperature is not something to do in half
precision); float64 inputs stay float64.

Distributed behaviour:

* :func:`nt_xent` with ``gather=True`` gathers the embeddings of every rank with a
  gradient-preserving all-gather, so the negatives are the global batch and the loss no longer
  depends on the number of processes (the official SimCLR code uses per-device negatives).
* :func:`concat_all_gather` gathers without gradient (MoCo: keys enqueued from every rank).
* :func:`info_nce` and :func:`byol_loss` are per-sample losses and need no communication.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

__all__ = ["byol_loss", "concat_all_gather", "info_nce", "nt_xent"]


def _rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _normalize(x: Tensor) -> Tensor:
    """L2-normalise the rows of ``x [N, D]``, half precision promoted to float32 (float64 kept)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return F.normalize(x, dim=-1)


def _full_precision(device: torch.device) -> torch.autocast:
    """A context with autocast off for ``device``'s type (matmuls would otherwise run in half precision)."""
    return torch.autocast(device_type=device.type, enabled=False)


def info_nce(query: Tensor, key: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE loss with a queue of negatives (He et al. 2020, arXiv 1911.05722; MoCo v2:
    Chen et al. 2020, arXiv 2003.04297, uses ``temperature=0.2``).

    For every sample ``i`` with ``q_i = query_i / |query_i|`` and ``k_i = key_i / |key_i|``::

        logits_i = [q_i . k_i, q_i . n_1, ..., q_i . n_K] / temperature
        loss_i   = -log softmax(logits_i)[0]

    and the result is the mean over the batch.

    Args:
        query: ``[B, D]`` the online (query) encoder's projections; gradients flow into it.
        key: ``[B, D]`` the momentum (key) encoder's projections of the other view; detached.
        queue: ``[K, D]`` negatives (keys of earlier batches); detached. The queue is normally
            stored already normalised; it is normalised again here all the same (idempotent on
            unit rows, costs one ``K x D`` pass, and makes a queue initialised with unnormalised
            random rows, or a half-precision round-off, harmless). ``K = 0`` is allowed (the loss
            is then 0).
        temperature: the softmax temperature ``T > 0``.

    Returns:
        scalar: the mean loss over the ``B`` queries.
    """
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError(f"query and key must both be [B, D], got {tuple(query.shape)} and {tuple(key.shape)}")
    if queue.dim() != 2 or queue.shape[1] != query.shape[1]:
        raise ValueError(f"queue must be [K, {query.shape[1]}], got {tuple(queue.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    with _full_precision(query.device):
        q = _normalize(query)
        k = _normalize(key.detach())
        negatives = _normalize(queue.detach()).to(q.dtype)
        positive_logits = (q * k.to(q.dtype)).sum(dim=1, keepdim=True)  # [B, 1]
        negative_logits = q @ negatives.T  # [B, K]
        logits = torch.cat([positive_logits, negative_logits], dim=1) / temperature  # [B, 1 + K]
        targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, targets)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float, gather: bool = True) -> Tensor:
    """SimCLR's NT-Xent loss (Chen et al. 2020, arXiv 2002.05709, eq. 1; ``temperature=0.1`` in S3L).

    The ``2N`` samples ``z = [z1; z2]`` (``N`` the global batch) are L2-normalised; for anchor
    ``a`` with positive ``p(a)`` (the same image's other view)::

        loss_a = -log( exp(z_a . z_p(a) / T) / sum_{c != a} exp(z_a . z_c / T) )

    i.e. each anchor has one positive and ``2N - 2`` negatives (every other sample of either view);
    the result is the mean of ``loss_a`` over the anchors.

    Under ``torch.distributed`` with ``world_size = W > 1`` and ``gather=True``, ``z1`` and ``z2``
    of every rank are gathered with a gradient-preserving all-gather
    (:func:`torch.distributed.nn.functional.all_gather`), so the candidates are the global
    ``2 * B * W`` samples, while the anchors are this rank's ``2B`` rows. Each rank returns the
    mean over its own anchors; so

    * the single-process loss on the concatenated global batch equals the mean of the ranks' losses
      (which is what the training loop logs after an all-reduce mean);
    * since the all-gather's backward sums the gradients of all ranks' losses, the gradient on a
      rank's local rows is ``W`` times the gradient of the single-process loss with respect to those
      rows. DDP divides the parameter gradients by ``W`` when it averages them, so the parameter
      update is exactly that of one process with the global batch.

    Every rank must call this function (and ``backward``) with the same local batch size ``B``.
    With ``gather=False`` each rank uses only its local batch as negatives (the official code's
    behaviour: the results then depend on the number of devices).

    Args:
        z1: ``[B, D]`` projections of the first views.
        z2: ``[B, D]`` projections of the second views (row ``i`` the same image as ``z1[i]``).
        temperature: the softmax temperature ``T > 0``.
        gather: gather the negatives from all ranks when distributed.

    Returns:
        scalar: the mean loss over this rank's ``2B`` anchors.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be [B, D], got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    with _full_precision(z1.device):
        return _nt_xent(_normalize(z1), _normalize(z2), temperature, gather)


def _nt_xent(z1: Tensor, z2: Tensor, temperature: float, gather: bool) -> Tensor:
    """:func:`nt_xent` on normalised ``z1, z2 [B, D]``."""
    batch = z1.shape[0]
    rank, world_size = _rank_and_world_size()
    if gather and world_size > 1:
        from torch.distributed.nn.functional import all_gather

        all_z1 = torch.cat(all_gather(z1), dim=0)  # [B * W, D], rank r's rows at [r * B, (r + 1) * B)
        all_z2 = torch.cat(all_gather(z2), dim=0)
    else:
        rank, world_size = 0, 1
        all_z1, all_z2 = z1, z2
    global_batch = batch * world_size
    candidates = torch.cat([all_z1, all_z2], dim=0)  # [2N, D]
    anchors = torch.cat([z1, z2], dim=0)  # [2B, D]
    local = torch.arange(batch, device=z1.device) + rank * batch  # global indices of this rank's images
    anchor_index = torch.cat([local, local + global_batch])  # position of each anchor among the candidates
    positive_index = torch.cat([local + global_batch, local])
    logits = anchors @ candidates.T / temperature  # [2B, 2N]
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * batch, device=z1.device), anchor_index] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, positive_index)


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """BYOL's normalised mean squared error (Grill et al. 2020, arXiv 2006.07733, eq. 2).

    ``mean_i |p_i / |p_i| - t_i / |t_i||^2 = mean_i (2 - 2 cos(p_i, t_i))``, in ``[0, 4]``; the
    target is detached (stop-gradient: it comes from the EMA target network). This is one view
    order; the method symmetrises by summing both orders,
    ``byol_loss(q(z1_online), z2_target) + byol_loss(q(z2_online), z1_target)`` (the paper's
    ``L + L~``, so the total lies in ``[0, 8]``).

    Args:
        prediction: ``[B, D]`` the online predictor's output for one view.
        target: ``[B, D]`` the target projector's output for the other view.

    Returns:
        scalar: the mean over the batch.
    """
    if prediction.shape != target.shape or prediction.dim() != 2:
        raise ValueError(
            f"prediction and target must both be [B, D], got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    with _full_precision(prediction.device):
        p = _normalize(prediction)
        cosine = (p * _normalize(target.detach()).to(p.dtype)).sum(dim=1)  # [B]
        return (2.0 - 2.0 * cosine).mean()


@torch.no_grad()
def concat_all_gather(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor [B, ...]`` of every rank along dim 0, without gradient.

    Returns ``[B * W, ...]`` ordered by rank (rank ``r``'s rows at ``[r * B, (r + 1) * B)``); every
    rank must pass the same shape. When not distributed (or ``W = 1``) it returns the tensor's values
    unchanged (detached, like the distributed result). For MoCo's queue: each rank enqueues the keys
    of the global batch so that all ranks keep identical queues.
    """
    _, world_size = _rank_and_world_size()
    if world_size == 1:
        return tensor.detach()
    tensor = tensor.detach().contiguous()
    gathered = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(gathered, tensor)
    return torch.cat(gathered, dim=0)
