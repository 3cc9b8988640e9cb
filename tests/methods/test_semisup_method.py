"""Semi-supervised self-training: the confidence mask, the losses, pseudo-mixup, the batch layout."""

from __future__ import annotations

import math

import pytest
import torch

from scarce.data.image_set import ImageSet
from scarce.data.semisup import LabelledUnlabelledViews, WeakStrongTransform
from scarce.data.transforms import SingleViewTransform, normalize_batch
from scarce.methods.base import Batch
from scarce.methods.semisup import SemiSupervised, confidence_mask, pseudo_label_loss, pseudo_mixup
from scarce.models import create_encoder
from scarce.models.classifier import head_logits


def test_confidence_mask_keeps_exactly_the_pseudo_labels_at_or_above_the_threshold() -> None:
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25], [0.05, 0.05, 0.9], [0.1, 0.69, 0.21]])
    pseudo, confidence, keep = confidence_mask(probabilities.log(), threshold=0.7)
    assert pseudo.tolist() == [0, 0, 2, 1]
    torch.testing.assert_close(confidence, torch.tensor([0.7, 0.5, 0.9, 0.69]))
    assert keep.tolist() == [True, False, True, False]


def test_pseudo_label_loss_hand_computed() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pseudo = torch.tensor([0, 0, 1])
    keep = torch.tensor([True, False, True])
    # CE of kept images: -log softmax: image 0: log(1 + e^-2); image 2: log 2; averaged over all 3 images
    expected = (math.log(1 + math.exp(-2)) + math.log(2)) / 3
    assert pseudo_label_loss(logits, pseudo, keep).item() == pytest.approx(expected, rel=1e-6)
    assert pseudo_label_loss(logits, pseudo, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_pseudo_mixup_weights_by_confidence() -> None:
    images = torch.stack([torch.full((3, 2, 2), value) for value in (0.0, 1.0, 5.0)])
    pseudo = torch.tensor([0, 1, 2])
    confidence = torch.tensor([0.9, 0.6, 0.3])
    keep = torch.tensor([True, True, False])
    seed = next(
        s for s in range(100) if torch.randperm(2, generator=torch.Generator().manual_seed(s)).tolist() == [1, 0]
    )
    mixed, targets = pseudo_mixup(images, pseudo, confidence, keep, 3, torch.Generator().manual_seed(seed))
    # the two confident images are swapped partners: lambda_0 = 0.9 / 1.5, lambda_1 = 0.6 / 1.5
    torch.testing.assert_close(targets, torch.tensor([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0]]))
    torch.testing.assert_close(mixed[:, 0, 0, 0], torch.tensor([0.6 * 0.0 + 0.4 * 1.0, 0.4 * 1.0 + 0.6 * 0.0]))
    assert mixed.shape == (2, 3, 2, 2)  # the unconfident image takes no part


def _image_set(count: int, labelled: bool) -> ImageSet:
    images = torch.randint(
        0, 256, (count, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(count)
    )
    labels = torch.arange(count) % 2 if labelled else None
    return ImageSet(images, labels, [f"i{index}" for index in range(count)], ["a", "b"] if labelled else [])


def test_labelled_unlabelled_views_layout_and_epoch_coverage() -> None:
    transform = WeakStrongTransform(SingleViewTransform(16), ops=2, magnitude=9, erasing_p=0.5)
    hidden = torch.arange(11) % 2
    dataset = LabelledUnlabelledViews(
        _image_set(3, True), _image_set(11, False), transform, mu=3, seed=1, hidden_labels=hidden
    )
    assert len(dataset) == math.ceil(11 / 3)
    item = dataset[(0, 0)]
    assert item["views"].shape == (1 + 2 * 3, 3, 16, 16) and item["views"].dtype == torch.uint8
    assert torch.equal(item["hidden_label"], hidden[item["unlabelled_index"]])
    seen = torch.cat([dataset[(0, k)]["unlabelled_index"] for k in range(len(dataset))])
    assert set(seen.tolist()) == set(range(11))  # every unlabelled image once per epoch (the last block wraps)
    labelled = [dataset.labelled_index(0, k) for k in range(6)]
    assert sorted(labelled[:3]) == [0, 1, 2] and sorted(labelled[3:]) == [0, 1, 2]  # passes over a permutation
    again = dataset[(0, 0)]
    assert torch.equal(item["views"], again["views"])  # a function of (seed, epoch, index) only
    assert not torch.equal(item["views"][1], item["views"][2])  # the strong view differs from the weak one
    assert not torch.equal(dataset[(1, 0)]["views"], item["views"])
    with pytest.raises(ValueError, match="needs unlabelled images"):
        LabelledUnlabelledViews(_image_set(3, True), _image_set(0, False), transform, mu=3, seed=1)


def test_the_teacher_is_the_ema_and_labels_the_weak_views() -> None:
    torch.manual_seed(0)
    method = SemiSupervised(create_encoder("scott-tiny"), 4, "simple", mu=2, threshold=0.5, weight_ema=True).train()
    with torch.no_grad():  # the EMA teacher differs from the student
        for parameter in method.ema_head.parameters():  # type: ignore[union-attr]
            parameter.add_(0.5)
    images = normalize_batch(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        ema = head_logits(method.ema_encoder, method.ema_head, images)  # type: ignore[arg-type]
        student = head_logits(method.encoder, method.head, images)
    torch.testing.assert_close(method.teacher_logits(images), ema)
    assert not torch.allclose(ema, student)
    seen: list[torch.Tensor] = []
    original = method.teacher_logits
    method.teacher_logits = lambda weak: seen.append(weak) or original(weak)  # type: ignore[method-assign,func-returns-value]
    views = [torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8) for _ in range(1 + 2 * 2)]
    method.training_step(Batch(views=views, labels=torch.tensor([0, 1, 2])))
    # the teacher sees the weak views (1 and 3 of each item), view-major
    torch.testing.assert_close(seen[0], normalize_batch(torch.cat([views[1], views[3]])))


def test_training_step_uses_the_teacher_and_aligns_hidden_labels() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("scott-tiny")
    method = SemiSupervised(encoder, 4, "simple", mu=2, threshold=0.5, weight_ema=True).train()
    batch_size = 3
    hidden = torch.tensor([[0, 1], [2, 3], [1, 0]])  # [B, mu]: item b's unlabelled images
    # the teacher predicts, for the weak views in view-major order (view j of every item), these labels
    predicted = hidden.T.reshape(-1)
    method.teacher_logits = lambda weak: 10.0 * torch.nn.functional.one_hot(predicted, 4).float()  # type: ignore[method-assign]
    views = [torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8) for _ in range(1 + 2 * 2)]
    batch = Batch(views=views, labels=torch.tensor([0, 1, 2]), extras={"hidden_label": hidden})
    output = method.training_step(batch)
    output.loss.backward()
    assert output.metrics["pseudo_label_accuracy"].item() == 1.0
    assert output.metrics["confident_share"].item() == 1.0
    assert method.encoder.tokenizer.conv1.weight.grad is not None
    shuffled = Batch(views=views, labels=torch.tensor([0, 1, 2]), extras={"hidden_label": hidden.flip(1)})
    assert method.training_step(shuffled).metrics["pseudo_label_accuracy"].item() < 1.0
    with pytest.raises(ValueError, match="1 \\+ 2 x 2 views"):
        method.training_step(Batch(views=views[:3], labels=torch.tensor([0, 1, 2])))
    # images/s counts the labelled and the unlabelled images: (1 + mu) B
    assert method.images_in(batch) == (1 + 2) * batch_size
