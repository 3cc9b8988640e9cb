"""The training sampler and per-sample determinism."""

from __future__ import annotations

import pytest

from scarce.data.loader import EpochBatchSampler, sample_seed


def _flatten(sampler: EpochBatchSampler) -> list[tuple[int, int]]:
    return [pair for batch in sampler for pair in batch]


def test_epoch_order_is_seeded_and_changes_per_epoch() -> None:
    sampler = EpochBatchSampler(50, global_batch=8, seed=1)
    sampler.set_epoch(0)
    first = _flatten(sampler)
    again = _flatten(sampler)
    sampler.set_epoch(1)
    second = _flatten(sampler)
    assert first == again
    assert [index for _, index in first] != [index for _, index in second]
    assert len(first) == 48 and len(set(first)) == 48  # drop_last: 6 full batches, no repeats
    assert all(epoch == 0 for epoch, _ in first)


def test_start_step_skips_exactly_the_done_steps() -> None:
    sampler = EpochBatchSampler(50, global_batch=8, seed=1, accumulation=2)
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == 12 and all(len(batch) == 4 for batch in full)  # 6 steps x 2 micro-batches of 4
    sampler.set_epoch(2, start_step=4)
    assert list(sampler) == full[8:]
    assert len(sampler) == 4


def test_global_batch_is_the_same_for_any_world_size_and_accumulation() -> None:
    def steps(world_size: int, accumulation: int) -> list[list[int]]:
        per_rank = []
        for rank in range(world_size):
            sampler = EpochBatchSampler(64, 16, seed=3, rank=rank, world_size=world_size, accumulation=accumulation)
            sampler.set_epoch(0)
            per_rank.append(list(sampler))
        merged = []
        for step in range(4):
            parts = []
            for micro in range(accumulation):
                for rank in range(world_size):
                    parts += [index for _, index in per_rank[rank][step * accumulation + micro]]
            merged.append(sorted(parts))
        return merged

    assert steps(1, 1) == steps(2, 1) == steps(2, 2) == steps(4, 1)


def test_ranks_partition_each_global_batch() -> None:
    ranks = [EpochBatchSampler(64, global_batch=16, seed=3, rank=rank, world_size=2) for rank in range(2)]
    for sampler in ranks:
        sampler.set_epoch(0)
    batches = [list(sampler) for sampler in ranks]
    assert len(batches[0]) == len(batches[1]) == 4
    single = EpochBatchSampler(64, global_batch=16, seed=3)
    single.set_epoch(0)
    for step, global_batch in enumerate(single):
        assert batches[0][step] + batches[1][step] == global_batch


def test_batch_not_divisible_by_ranks_times_accumulation() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        EpochBatchSampler(64, global_batch=10, seed=0, world_size=4)


def test_sample_seed_depends_on_all_parts() -> None:
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(3) for i in range(3)}
    assert len(seeds) == 27
    assert sample_seed(1, 2, 3) == sample_seed(1, 2, 3)
