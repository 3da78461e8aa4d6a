"""The sample order: every item once per epoch, ranks disjoint, a resumed order identical."""

from itertools import islice

import pytest

from recammaster.training.data import TrainingOrder


def take(order: TrainingOrder, count: int) -> list:
    return list(islice(iter(order), count))


def test_each_epoch_is_a_permutation_and_epochs_differ():
    keys = take(TrainingOrder(7, seed=3), 21)
    for epoch in range(3):
        chunk = keys[7 * epoch : 7 * epoch + 7]
        assert sorted(index for index, _ in chunk) == list(range(7))
        assert {e for _, e in chunk} == {epoch}
    assert [i for i, _ in keys[:7]] != [i for i, _ in keys[7:14]]


def test_ranks_split_the_run_and_a_restart_continues_it():
    whole = take(TrainingOrder(10, seed=1), 40)
    ranks = [take(TrainingOrder(10, seed=1, rank=r, world_size=4), 10) for r in range(4)]
    assert [ranks[g % 4][g // 4] for g in range(40)] == whole
    assert take(TrainingOrder(10, seed=1, rank=2, world_size=4, start=6), 4) == ranks[2][6:10]


def test_endless_sources_get_sample_numbers():
    assert take(TrainingOrder(None, rank=1, world_size=2, start=3), 3) == [7, 9, 11]


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        TrainingOrder(0)
    with pytest.raises(ValueError, match="rank 2"):
        TrainingOrder(5, rank=2, world_size=2)
