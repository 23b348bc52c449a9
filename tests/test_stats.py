"""nblib.stats against cases with a known answer (and scipy's, where it is installed)."""

import math

import numpy as np
import pytest

from nblib import stats


def test_finite_mean_skips_what_did_not_finish():
    assert stats.finite_mean([1.0, np.nan, 3.0, np.inf]) == 2.0
    assert math.isnan(stats.finite_mean([np.nan])) and math.isnan(stats.finite_mean([]))


def test_geometric_mean_of_ratios():
    assert stats.geometric_mean([1e-9, 1e-3, 1e3]) == pytest.approx(1e-3)
    assert stats.geometric_mean([-4.0, 0.0, 1.0, np.nan]) == pytest.approx(2.0)
    assert math.isnan(stats.geometric_mean([0.0]))


def test_ranks_share_ties():
    assert stats.ranks([3, 1, 3]).tolist() == [2.5, 1.0, 2.5]
    assert stats.ranks([10, 30, 20]).tolist() == [1.0, 3.0, 2.0]


@pytest.mark.parametrize("a, b, rho", [([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
                                       ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
                                       ([1, 2, 3, 4, 5], [1, 10, 100, 1e3, 1e4], 1.0),
                                       ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], 0.8)])
def test_spearman_known_values(a, b, rho):
    assert stats.spearman(a, b) == pytest.approx(rho)


def test_spearman_with_ties_is_pearson_of_mean_ranks():
    # ranks [1, 2.5, 2.5, 4] and [1, 3, 2, 4]: covariance 4.5 over sqrt(4.5 * 5)
    assert stats.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))


@pytest.mark.parametrize("a, b, words", [([1, 2], [1, 2, 3], "equally long"), ([1], [2], "at least 2"),
                                         ([1, 1, 1], [1, 2, 3], "every value of a"),
                                         ([1, np.nan], [1, 2], "a contains NaN")])
def test_spearman_refuses_what_has_no_rank_correlation(a, b, words):
    with pytest.raises(ValueError, match=words):
        stats.spearman(a, b)
