"""The training sampler and per-sample determinism."""

from __future__ import annotations

from scarce.data.loader import EpochBatchSampler, sample_seed


def _flatten(sampler: EpochBatchSampler) -> list[tuple[int, int]]:
    return [pair for batch in sampler for pair in batch]


def test_epoch_order_is_seeded_and_changes_per_epoch() -> None:
    sampler = EpochBatchSampler(50, batch_size=8, seed=1)
    sampler.set_epoch(0)
    first = _flatten(sampler)
    again = _flatten(sampler)
    sampler.set_epoch(1)
    second = _flatten(sampler)
    assert first == again
    assert [index for _, index in first] != [index for _, index in second]
    assert len(first) == 48 and len(set(first)) == 48  # drop_last: 6 full batches, no repeats
    assert all(epoch == 0 for epoch, _ in first)


def test_start_batch_skips_exactly_the_done_batches() -> None:
    sampler = EpochBatchSampler(50, batch_size=8, seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=4)
    assert list(sampler) == full[4:]
    assert len(sampler) == 2


def test_ranks_partition_each_global_batch() -> None:
    ranks = [EpochBatchSampler(64, batch_size=8, seed=3, rank=rank, world_size=2) for rank in range(2)]
    for sampler in ranks:
        sampler.set_epoch(0)
    batches = [list(sampler) for sampler in ranks]
    assert len(batches[0]) == len(batches[1]) == 4
    single = EpochBatchSampler(64, batch_size=16, seed=3)
    single.set_epoch(0)
    for step, global_batch in enumerate(single):
        assert batches[0][step] + batches[1][step] == global_batch


def test_sample_seed_depends_on_all_parts() -> None:
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(3) for i in range(3)}
    assert len(seeds) == 27
    assert sample_seed(1, 2, 3) == sample_seed(1, 2, 3)
