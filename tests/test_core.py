"""Pure core: flat parameters, the noise table, populations, fitness shaping."""

import math
import pickle

import pytest
import torch
from torch import nn

from pytorch_es.core import (
    NoiseTable,
    Population,
    as_parameter_list,
    centered_ranks,
    flatten,
    raw,
    unflatten,
    write_back,
    z_score,
)
from pytorch_es.core.noise import default_table_size, mix_seed
from pytorch_es.core.shaping import nes_utilities


def test_flatten_and_write_back_round_trip_in_place():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    storages = [p.data_ptr() for p in model.parameters()]
    vector = flatten(model)
    assert vector.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    write_back(torch.arange(vector.numel(), dtype=torch.float32), model)
    assert [p.data_ptr() for p in model.parameters()] == storages  # same storage, no rebinding
    assert torch.equal(flatten(model), torch.arange(vector.numel(), dtype=torch.float32))
    # the vector passed in is not aliased by the model
    source = torch.zeros(vector.numel())
    write_back(source, model)
    source += 1
    assert float(flatten(model).abs().sum()) == 0.0


def test_mixed_dtypes_promote_and_convert_back():
    params = [torch.ones(2, 2, dtype=torch.float32), torch.full((3,), 2.0, dtype=torch.float64)]
    vector = flatten(params)
    assert vector.dtype == torch.float64
    views = unflatten(vector * 3, params)
    assert [v.dtype for v in views] == [torch.float32, torch.float64]
    write_back(vector * 3, params)
    assert params[0].dtype == torch.float32 and float(params[0][0, 0]) == 3.0
    assert float(params[1][0]) == 6.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "empty"),
        ([torch.ones(2), "x"], r"parameters\[1\] must be a torch.Tensor"),
        ([torch.ones(2, dtype=torch.int64)], "floating-point"),
        (42, "nn.Module or a list of tensors"),
    ],
)
def test_bad_parameters_are_named(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        as_parameter_list(bad)


def test_unflatten_wrong_size_says_both_sizes():
    with pytest.raises(ValueError, match="5 elements but the parameters have 6"):
        unflatten(torch.zeros(5), [torch.zeros(2, 3)])


def test_noise_table_is_reproducible_and_pickles_without_values():
    a = NoiseTable(seed=7, size=1 << 16)
    b = NoiseTable(seed=7, size=1 << 16)
    assert torch.equal(a.values, b.values)
    assert not torch.equal(a.values, NoiseTable(seed=8, size=1 << 16).values)
    payload = pickle.dumps(a)
    assert len(payload) < 1000  # the description only, never the 256 kB of values
    assert torch.equal(pickle.loads(payload).values, a.values)
    assert torch.equal(a.offsets(3, 10, 100), b.offsets(3, 10, 100))
    assert not torch.equal(a.offsets(3, 10, 100), a.offsets(4, 10, 100))


def test_noise_is_standard_normal():
    values = NoiseTable(seed=0, size=1 << 20).values
    assert abs(float(values.mean())) < 0.01
    assert abs(float(values.std()) - 1.0) < 0.01


def test_default_table_size_exceeds_dim():
    for dim in (1, 10_000, 1_000_000, 50_000_000):
        assert default_table_size(dim) > dim
    assert mix_seed(1, 2) != mix_seed(2, 1)


def make_population(size=7, dim=50, antithetic=True, generation=3):
    center = torch.linspace(-1, 1, dim)
    return Population(center, 0.5, NoiseTable(11, 4096), generation, size, antithetic)


def test_member_is_rebuilt_from_seed_generation_and_index_alone():
    population = make_population()
    rebuilt = pickle.loads(pickle.dumps(population))  # as a remote worker would
    for i in range(len(population)):
        assert torch.equal(population.member(i), rebuilt.member(i))
    assert torch.allclose(population.members(), torch.stack([population.member(i) for i in range(7)]))


def test_antithetic_pairs_mirror_and_odd_member_is_unpaired():
    population = make_population(size=7)
    for k in range(3):
        assert torch.equal(population.epsilon(2 * k), -population.epsilon(2 * k + 1))
    assert len(population.offsets) == 4  # three pairs and one unpaired member
    plain = make_population(size=7, antithetic=False)
    assert len(plain.offsets) == 7
    with pytest.raises(IndexError, match="member index 7"):
        population.member(7)


@pytest.mark.parametrize("antithetic", [True, False])
def test_noise_matrix_and_members_of_any_index_order_equal_the_single_members(antithetic):
    population = make_population(size=7, antithetic=antithetic)
    order = [6, 3, 0, 5, 1, 4, 2]
    assert torch.equal(population.noise_matrix(order), torch.stack([population.epsilon(i) for i in order]))
    assert torch.equal(population.noise_matrix(torch.tensor(order)), population.noise_matrix(order))
    assert torch.equal(population.members([4, 4, 1]), torch.stack([population.member(i) for i in (4, 4, 1)]))
    assert population.members([]).shape == (0, 50)
    with pytest.raises(IndexError, match="member index -1"):
        population.noise_matrix([0, -1])
    with pytest.raises(IndexError, match="member index 9"):
        population.members(torch.tensor([9]))


def test_centered_ranks_handle_ties_and_constant_rewards():
    ranks = centered_ranks(torch.tensor([3.0, 1.0, 2.0, 2.0]))
    assert torch.allclose(ranks, torch.tensor([0.5, -0.5, 0.0, 0.0], dtype=torch.float64))
    assert float(ranks.sum()) == 0.0
    for shaping in (centered_ranks, z_score, raw):
        out = shaping(torch.full((6,), 4.2))
        assert torch.isfinite(out).all() and float(out.abs().sum()) == 0.0


def test_rank_shapings_without_ties_give_the_positions_utilities():
    """Tie-free rewards take a sort-only path: exactly the sorted positions for centered ranks,
    eq. 13's utilities for NES."""
    rewards = torch.randn(101, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    order = rewards.argsort().argsort().to(torch.float64)
    assert torch.equal(centered_ranks(rewards), order / 100 - 0.5)
    n = 101
    raw_utility = (math.log(n / 2 + 1) - torch.log(torch.arange(1, n + 1, dtype=torch.float64))).clamp(min=0)
    by_rank = raw_utility / raw_utility.sum() - 1 / n  # rank 1 = best
    best_first = (-rewards).argsort().argsort()
    assert torch.allclose(nes_utilities(rewards), by_rank[best_first], rtol=0, atol=1e-15)
    assert abs(float(nes_utilities(rewards).sum())) < 1e-15


def test_z_score_matches_the_original_formula():
    rewards = torch.tensor([1.0, 5.0, 2.0, 8.0], dtype=torch.float64)
    expected = (rewards - rewards.mean()) / rewards.std(unbiased=False)
    assert torch.allclose(z_score(rewards), expected)
    assert torch.allclose(raw(rewards), rewards - rewards.mean())


def test_square_norms_of_long_slices_take_the_dot_path_and_agree():
    """Slices of 2**14 values or more are normed with one dot each on the slice (no gathered
    copy); both paths give |eps_k|^2 to float32 rounding, and no offsets give an empty tensor."""
    table = NoiseTable(seed=3, size=1 << 18)
    dim = 1 << 14
    offsets = table.offsets(1, 5, dim)
    expected = torch.stack([table.slice(int(o), dim).double().square().sum() for o in offsets])
    torch.testing.assert_close(table.square_norms(offsets, dim).double(), expected, rtol=1e-5, atol=0)
    small = table.square_norms(offsets, dim - 1).double()  # the gathered path
    expected_small = torch.stack([table.slice(int(o), dim - 1).double().square().sum() for o in offsets])
    torch.testing.assert_close(small, expected_small, rtol=1e-5, atol=0)
    assert table.square_norms(offsets[:0], dim).shape == (0,)


@pytest.mark.parametrize(("dim", "size", "antithetic"), [(50, 9, True), (50, 8, False), (1 << 16, 130, True)])
def test_linear_and_squared_sums_in_one_read_equal_the_two_reductions(dim, size, antithetic):
    """The fused reduction (SNES, PGPE, CEM) gives the two reductions' bits, on the gathered
    path and on the slice-by-slice path of large populations (65 pairs x 2**16 > 2**22)."""
    center = torch.zeros(dim)
    population = Population(center, 0.5, NoiseTable(7, dim * 4), 2, size, antithetic)
    weights = torch.randn(size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weights[3] = 0.0
    linear, squared = population.linear_and_squared_sums(weights)
    assert torch.equal(linear, population.linear_sum(weights))
    assert torch.equal(squared, population.squared_sum(weights))
    expected = sum(w * population.epsilon(i).double() for i, w in enumerate(weights.tolist()))
    torch.testing.assert_close(linear.double(), expected, rtol=1e-4, atol=1e-4)


def test_slice_by_slice_sums_in_blocks_equal_whole_slice_accumulation_bit_for_bit():
    """Dims above the 512 KiB block (2**17 float32 values) are summed block by block: each
    element sees the same operations in the same order as whole-slice accumulation."""
    dim = 300_000  # two full blocks and a partial one
    table = NoiseTable(seed=5, size=4 * dim)
    offsets = table.offsets(2, 15, dim)  # 15 x 300,000 > 2**22: the slice-by-slice path
    weights = torch.randn(15, generator=torch.Generator().manual_seed(3)).to(torch.float64)
    weights[4] = 0.0
    square_weights = weights.flip(0)
    expected, expected_square = torch.zeros(dim), torch.zeros(dim)
    for offset, a, b in zip(offsets.tolist(), weights.float().tolist(), square_weights.float().tolist()):
        eps = table.slice(offset, dim)
        if a != 0.0:
            expected.add_(eps, alpha=a)
        if b != 0.0:
            expected_square.addcmul_(eps, eps, value=b)
    assert torch.equal(table.weighted_sum(offsets, weights, dim), expected)
    assert torch.equal(table.weighted_square_sum(offsets, square_weights, dim), expected_square)
    linear, square = table.weighted_sums(offsets, weights, square_weights, dim)
    assert torch.equal(linear, expected) and torch.equal(square, expected_square)


@pytest.mark.parametrize(("dim", "antithetic"), [(50, False), (50, True), (1 << 14, False)])
def test_square_norms_of_some_members_equal_those_of_all(dim, antithetic):
    """sep-CMA-ES asks only for the members with negative weights: the same bits as the full
    vector's entries, on the gathered path and on the one-dot-per-slice path."""
    population = Population(torch.zeros(dim), 0.5, NoiseTable(9, 4 * dim), 1, 9, antithetic)
    some = torch.tensor([8, 0, 5, 3])
    assert torch.equal(population.square_norms(some), population.square_norms()[some])


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("norm", [0.0, 1e-10, 0.05, 0.3, 1.0, 7.0, 60.0])
def test_expm_agrees_with_torch_matrix_exp(dtype, tolerance, symmetric, norm):
    """``core.linalg.expm`` (scaling and squaring with a Paterson-Stockmeyer Taylor
    polynomial) against ``torch.linalg.matrix_exp`` in float64, relative to the largest entry,
    across the norms where it takes no squaring, a few and many."""
    from pytorch_es.core.linalg import expm

    matrix = torch.randn(30, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    matrix = (matrix + matrix.T) / 2 if symmetric else matrix
    matrix = (matrix / torch.linalg.matrix_norm(matrix, 1) * norm).to(dtype)
    reference = torch.linalg.matrix_exp(matrix.double())
    error = (expm(matrix).double() - reference).abs().max() / reference.abs().max()
    assert expm(matrix).dtype == dtype and float(error) < tolerance


def test_expm_refuses_what_it_cannot_exponentiate():
    from pytorch_es.core.linalg import expm

    with pytest.raises(ValueError, match="square floating-point"):
        expm(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="square floating-point"):
        expm(torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="finite"):
        expm(torch.tensor([[0.0, math.nan], [0.0, 0.0]]))
