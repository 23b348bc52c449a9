"""Tests for nblib.plots: the figures and tables draw what they are given, and refuse clearly what
they cannot draw (never an error from deep inside numpy or matplotlib)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nblib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_mean_band_draws_the_mean_and_the_range():
    ax = plt.subplots()[1]
    plots.mean_band(ax, [0, 1, 2], [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], "runs", "C1")
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [2.0, 3.0, 4.0])
    assert len(ax.collections) == 1


def test_a_diverged_run_is_a_gap_not_an_error():
    ax = plt.subplots()[1]
    plots.mean_band(ax, [0, 1], [[1.0, np.nan], [1.0, 2.0]], "runs")
    assert np.isnan(ax.lines[0].get_ydata()[1])


@pytest.mark.parametrize("call, error, message", [
    (lambda ax: plots.mean_band(ax, [0, 1, 2], [[1.0, 2.0]], "a"), ValueError,
     r"x has 3 values but runs has 2 columns"),
    (lambda ax: plots.mean_band(None, [0, 1], [[1.0, 2.0]], "a"), TypeError, r"ax must be a matplotlib Axes"),
    (lambda ax: plots.mean_band(ax, [0, 1], [["a", "b"]], "a"), TypeError, r"runs must hold real numbers"),
    (lambda ax: plots.mean_band(ax, [0, 1], np.ones((2, 2, 2)), "a"), ValueError,
     r"runs must have one row per run"),
    (lambda ax: plots.mean_band(ax, [0, 1], [[1.0, 2.0]], 3), TypeError, r"label must be a string"),
    (lambda ax: plots.mean_band(ax, [0, 1], [[1.0, 2.0]], "a", "notacolour"), ValueError,
     r"colour must be a matplotlib colour"),
    (lambda ax: plots.accuracy_curves([], title="t"), TypeError, r"curves must be a non-empty dict"),
    (lambda ax: plots.accuracy_curves({"a": [[0.5, "x"]]}, title="t"), TypeError,
     r"curves\['a'\] must hold real numbers"),
    (lambda ax: plots.accuracy_curves({"a": [[0.5]]}, title=None), TypeError, r"title must be a string"),
    (lambda ax: plots.neuron_bars([], title="t"), TypeError, r"gradients must be a non-empty list"),
    (lambda ax: plots.neuron_bars([np.ones((2, 2))], title="t"), ValueError,
     r"gradients\[0\] must be a 1-D array"),
    (lambda ax: plots.neuron_bars([np.ones(3)], neurons=0, title="t"), ValueError,
     r"neurons must be at least 1"),
    (lambda ax: plots.neuron_bars([np.ones(3), np.ones(3)], title="t", axes=[ax]), ValueError,
     r"axes must be a list of 2 Axes"),
    (lambda ax: plots.neuron_bars([np.ones(3)], title="t", axes="x"), ValueError,
     r"axes must be a list of 1 Axes"),
    (lambda ax: plots.neuron_bars([np.ones(3)], title="t", axes=[None]), ValueError,
     r"axes must be a list of 1 Axes"),
    (lambda ax: plots.speed_curves(np.ones(3), title="t"), ValueError, r"speeds must be a 2-D array"),
    (lambda ax: plots.speed_curves(np.ones((3, 2)), title="t", band=1), TypeError, r"band must be a pair"),
    (lambda ax: plots.speed_curves(np.ones((3, 2)), title="t", band=(np.ones((3, 2)), np.ones((2, 2)))),
     ValueError, r"band's low and high must have the shape of speeds, \(3, 2\)"),
    (lambda ax: plots.glue(3, 1.0), TypeError, r"name must be a string"),
])
def test_plot_helpers_refuse_what_they_cannot_draw(call, error, message):
    with pytest.raises(error, match=message):
        call(plt.subplots()[1])


def test_neuron_bars_draws_more_than_six_layers_and_all_zero_gradients():
    axes = plots.neuron_bars([np.arange(4) - 2.0] * 7 + [np.zeros(3)], neurons=3, title="deep")
    assert len(axes) == 8
    assert axes[6].patches[0].get_facecolor() == axes[0].patches[0].get_facecolor()   # the colours cycle


def test_speed_curves_draws_one_line_per_layer_with_its_band():
    ax = plots.speed_curves(np.ones((4, 3)), title="t", band=(np.full((4, 3), 0.5), np.full((4, 3), 2.0)))
    assert len(ax.lines) == 3 and len(ax.collections) == 3


def test_table_refuses_rows_that_do_not_match_the_header():
    with pytest.raises(ValueError, match=r"rows\[1\] has 3 cells but the header has 2 columns"):
        plots.Table(["a", "b"], [[1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match=r"rows\[0\] has 1 cells but the header has 2 columns"):
        plots.Table(["a", "b"], [[1]])
    with pytest.raises(TypeError, match=r"rows\[0\] must be a list of cells, got 'ab'"):
        plots.Table(["a", "b"], ["ab"])
    with pytest.raises(TypeError, match=r"header must be a list, got 'ab'"):
        plots.Table("ab", [])
    with pytest.raises(TypeError, match=r"caption must be a string"):
        plots.Table(["a"], [[1]], caption=None)


def test_table_shows_every_cell():
    table = plots.Table(["a", "b"], [[1, "<x>"]], caption="c")
    assert "&lt;x&gt;" in table._repr_html_() and "<caption>c</caption>" in table._repr_html_()
    assert repr(table).splitlines() == ["c", "a  b  ", "-  ---", "1  <x>"]


def test_mean_sd():
    assert plots.mean_sd([1.0, 2.0, 3.0]) == "2.00 ± 1.00"
    assert plots.mean_sd(np.array([0.5]), 1, scale=100) == "50.0 ± 0.0"
    assert plots.mean_sd([1.0, np.nan]) == "nan ± nan"
    with pytest.raises(ValueError, match=r"values is empty"):
        plots.mean_sd([])
    with pytest.raises(TypeError, match=r"digits must be an integer from 0 to 20, got 2.0"):
        plots.mean_sd([1.0], 2.0)
    with pytest.raises(TypeError, match=r"values must hold real numbers"):
        plots.mean_sd(["a"])


# --- tests for figures of chapters 1 to 3 (keep this line) ---
def test_singular_value_picture_draws_the_circle_its_ellipse_and_the_singular_vectors():
    m = np.array([[2.0, 0.0], [0.0, 0.5]])
    ax = plots.singular_value_picture(m)
    circle, ellipse = ax.lines[0], ax.lines[1]
    np.testing.assert_allclose(np.hypot(circle.get_xdata(), circle.get_ydata()), 1.0)
    # the image of the circle under diag(2, 0.5) is the ellipse (x/2)^2 + (y/0.5)^2 = 1
    x, y = ellipse.get_xdata(), ellipse.get_ydata()
    np.testing.assert_allclose((x / 2) ** 2 + (y / 0.5) ** 2, 1.0)
    arrows = [t for t in ax.texts]
    assert len(arrows) == 4                                   # v_1, s_1 u_1, v_2, s_2 u_2
    tips = sorted(np.hypot(*a.xy) for a in arrows)
    np.testing.assert_allclose(tips, [0.5, 1.0, 1.0, 2.0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("2.00" in t for t in labels) and any("0.50" in t for t in labels)


@pytest.mark.parametrize("matrix, error, message", [
    (np.eye(3), ValueError, r"matrix must be 2 x 2 \(a map of the plane\), got shape \(3, 3\)"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, r"matrix contains NaN or infinity"),
    ("M", TypeError, r"matrix must hold real numbers"),
])
def test_singular_value_picture_refuses_what_is_not_a_2_by_2_matrix(matrix, error, message):
    with pytest.raises(error, match=message):
        plots.singular_value_picture(matrix)




# --- tests for figures of chapters 4 and 5 (keep this line) ---
