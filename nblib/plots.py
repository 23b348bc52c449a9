"""Figures and tables drawn from the plain data that ``nblib.training`` and ``nblib.metrics`` return.

Every function takes numbers (lists or arrays), never a network or a data set, and returns the
matplotlib Axes it drew on (or an object that displays itself in Jupyter), so a notebook can
add to it. ``glue`` hands a computed number to the book's text (myst-nb), and quietly does
nothing outside a book build, e.g. on Colab.
"""

from __future__ import annotations

import html
import math
from numbers import Real
from collections.abc import Mapping
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize, is_color_like

from . import checks, stats

Array = np.ndarray
# The colours of the book's figures, in order (ColorBrewer Dark2): depths, layers, variants.
COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` available to the text as ``{glue:text}`name``` (myst-nb). Numpy scalars are
    handed over as plain Python numbers, so that format specs like ``:.2f`` work on them.
    Returns None, as ``myst_nb.glue`` does: a cell that ends with a ``glue`` call (more than
    fifty in the chapters) prints nothing under it."""
    checks.text(name, "name")
    if isinstance(value, np.generic):
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # outside the book build (Colab, a plain Jupyter): nothing to glue into
        return
    myst_glue(name, value, display=display)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(value: float, digits: int = 1) -> str:
    """A number in scientific notation for the text, ``2.4 × 10¹⁵`` (``digits`` decimals)."""
    value = float(value)
    if value == 0 or not np.isfinite(value):
        return f"{value:g}"
    exponent = int(np.floor(np.log10(abs(value))))
    mantissa = value / 10 ** exponent
    if round(abs(mantissa), digits) >= 10:          # 9.96 rounds up to 10.0 x 10^e: write 1.0 x 10^(e+1)
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits}f} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def mean_band(ax: plt.Axes, x: Array, runs: Array, label: str, colour: str | None = None) -> plt.Axes:
    """Plot the mean of ``runs`` (one row per run) against ``x``, with a band from the lowest
    to the highest run."""
    _check_axes(ax, "ax")
    runs = _curves(runs, "runs")
    x = checks.array(x, "x", ndim=1)
    if len(x) != runs.shape[1]:
        raise ValueError(f"x has {len(x)} values but runs has {runs.shape[1]} columns (one per value of x)")
    checks.text(label, "label")
    _check_colour(colour)
    (line,) = ax.plot(x, runs.mean(axis=0), label=label, color=colour)
    if len(runs) > 1:
        ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), color=line.get_color(), alpha=0.2,
                        linewidth=0)
    return ax


def accuracy_curves(curves: dict[str, Array], *, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Validation accuracy (in %) per epoch: one line per label, the mean over runs with the
    min-max band. ``curves[label]`` has one row per run (seed) and one column per epoch."""
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(f"curves must be a non-empty dict {{label: runs}}, got {curves!r:.60}")
    curves = {checks.text(label, "every label of curves"): _curves(runs, f"curves[{label!r}]")
              for label, runs in curves.items()}
    checks.text(title, "title")
    ax = _check_axes(ax, "ax") if ax is not None else plt.subplots(figsize=(7, 4))[1]
    for i, (label, runs) in enumerate(curves.items()):
        runs = 100 * runs
        mean_band(ax, np.arange(1, runs.shape[1] + 1), runs, label, COLOURS[i % 6])
    ax.set(title=title, xlabel="epoch", ylabel="validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def neuron_bars(gradients: Sequence[Array], *, neurons: int = 6, title: str,
                axes: Sequence[plt.Axes] | None = None) -> Sequence[plt.Axes]:
    """Nielsen's picture of how fast each neuron learns: for each hidden layer, horizontal bars
    of dC/db for its first ``neurons`` neurons, all on one scale."""
    if isinstance(gradients, np.ndarray) or not isinstance(gradients, Sequence) or not gradients:
        raise TypeError("gradients must be a non-empty list with one 1-D array of dC/db per hidden layer")
    neurons = checks.integer(neurons, "neurons")
    gradients = [checks.array(g, f"gradients[{l}]", ndim=1).astype(float)[:neurons]
                 for l, g in enumerate(gradients)]
    checks.text(title, "title")
    if axes is not None and (isinstance(axes, (str, bytes, plt.Axes))
                             or not isinstance(axes, (Sequence, np.ndarray)) or len(axes) != len(gradients)
                             or not all(isinstance(ax, plt.Axes) for ax in axes)):
        raise ValueError(f"axes must be a list of {len(gradients)} Axes, one per hidden layer")
    if axes is None:
        fig, axes = plt.subplots(1, len(gradients), figsize=(3.2 * len(gradients), 3), sharex=True,
                                 squeeze=False)
        axes = axes[0]
        fig.suptitle(title)
    limit = 1.1 * max(np.abs(g).max() for g in gradients) or 1.0     # all zero: any scale
    for l, (ax, g) in enumerate(zip(axes, gradients), start=1):
        ax.barh(np.arange(len(g)), g, color=COLOURS[(l - 1) % len(COLOURS)])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(title=f"hidden layer {l}", xlim=(-limit, limit), xlabel=r"$\partial C / \partial b$",
               yticks=np.arange(len(g)), yticklabels=[f"neuron {j + 1}" for j in range(len(g))])
        ax.invert_yaxis()
    plt.tight_layout()
    return axes


def speed_curves(speeds: Array, *, title: str, ax: plt.Axes | None = None,
                 band: Array | None = None) -> plt.Axes:
    """Learning speed of each hidden layer against epoch, on a log scale. ``speeds`` has one row
    per epoch and one column per hidden layer; ``band``, if given, is (low, high) arrays of the
    same shape drawn around each line."""
    speeds = checks.array(speeds, "speeds", ndim=2, finite=False).astype(float)
    if band is not None:
        if isinstance(band, (str, bytes)) or not isinstance(band, (Sequence, np.ndarray)) or len(band) != 2:
            raise TypeError(f"band must be a pair (low, high) of arrays shaped like speeds, got {band!r:.60}")
        band = [checks.array(b, f"band[{i}]", finite=False) for i, b in enumerate(band)]
        if any(b.shape != speeds.shape for b in band):
            raise ValueError(f"band's low and high must have the shape of speeds, {speeds.shape}, "
                             f"got {band[0].shape} and {band[1].shape}")
    checks.text(title, "title")
    ax = _check_axes(ax, "ax") if ax is not None else plt.subplots(figsize=(7, 4))[1]
    epochs = np.arange(len(speeds))
    for l in range(speeds.shape[1]):
        colour = COLOURS[l % 6]
        ax.plot(epochs, speeds[:, l], color=colour, label=f"hidden layer {l + 1}")
        if band is not None:
            ax.fill_between(epochs, band[0][:, l], band[1][:, l], color=colour, alpha=0.2, linewidth=0)
    ax.set(title=title, xlabel="epoch", ylabel=r"speed of learning $\|\partial C/\partial b^l\|$",
           yscale="log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return ax


class Table:
    """A small table that shows itself as HTML in Jupyter and in the book, and as text elsewhere."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> None:
        """``rows`` must each have one cell per column of ``header``."""
        for name, value in (("header", header), ("rows", rows)):
            if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
                raise TypeError(f"{name} must be a list, got {value!r:.60}")
        if len(header) == 0:
            raise ValueError("header must name at least one column")
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
                raise TypeError(f"rows[{i}] must be a list of cells, got {row!r:.60}")
            if len(row) != len(header):
                raise ValueError(f"rows[{i}] has {len(row)} cells but the header has {len(header)} columns")
        self.header, self.rows, self.caption = (list(header), [list(r) for r in rows],
                                                checks.text(caption, "caption"))

    def _repr_html_(self) -> str:
        cell = lambda tag, v: f"<{tag}>{html.escape(str(v))}</{tag}>"  # noqa: E731
        head = "".join(cell("th", h) for h in self.header)
        body = "".join("<tr>" + "".join(cell("td", v) for v in r) + "</tr>" for r in self.rows)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [max(len(str(v)) for v in col) for col in zip(self.header, *self.rows)]
        line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))  # noqa: E731
        text = [line(self.header), line("-" * w for w in widths)] + [line(r) for r in self.rows]
        return "\n".join(([self.caption] if self.caption else []) + text)


def mean_sd(values: Array, digits: int = 2, scale: float = 1.0) -> str:
    """'mean ± sd' of ``values`` times ``scale`` (the sample standard deviation, n - 1). NaN
    values (a run that diverged, say) give 'nan', never a number that hides them."""
    digits = checks.integer(digits, "digits", 0, at_most=20)
    values = checks.number(scale, "scale") * checks.array(values, "values", finite=False).astype(float)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {sd:.{digits}f}"


def _check_axes(ax: Any, name: str) -> plt.Axes:
    return checks.instance(ax, name, plt.Axes, "a matplotlib Axes (e.g. plt.subplots()[1])")


def _check_colour(colour: Any) -> None:
    if colour is not None and not is_color_like(colour):
        raise ValueError(f"colour must be a matplotlib colour such as 'C0' or '#1b9e77', got {colour!r}")


def _curves(runs: Array, name: str) -> Array:
    """One row per run, one column per point: a 1-D array is one run (NaN allowed: a gap)."""
    arr = checks.array(runs, name, finite=False).astype(float)
    if arr.ndim > 2:
        raise ValueError(f"{name} must have one row per run and one column per point, got shape {arr.shape}")
    return np.atleast_2d(arr)


# --- figures added for chapters 1 to 3 (keep this line) ---
def singular_value_picture(matrix: Array, *, ax: plt.Axes | None = None,
                           title: str | None = None) -> plt.Axes:
    """What a 2 x 2 matrix M does to the unit circle: the circle, its image (an ellipse whose
    semi-axes are the singular values s_1 >= s_2 along the left singular vectors u_1, u_2), and
    the two right singular vectors v_1, v_2 on the circle, which M sends to s_1 u_1 and s_2 u_2."""
    m = checks.array(matrix, "matrix", ndim=2).astype(float)
    if m.shape != (2, 2):
        raise ValueError(f"matrix must be 2 x 2 (a map of the plane), got shape {m.shape}")
    ax = _check_axes(ax, "ax") if ax is not None else plt.subplots(figsize=(4.5, 4.5))[1]
    u, s, vt = np.linalg.svd(m)
    angle = np.linspace(0, 2 * np.pi, 361)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    ax.plot(*circle, color="grey", linewidth=1, label="unit circle")
    ax.plot(*(m @ circle), color="C0", linewidth=1.5, label="its image under M")
    for k, colour in enumerate(("C3", "C2")):
        ax.annotate("", xy=vt[k], xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color=colour, linestyle="--"))
        ax.annotate("", xy=s[k] * u[:, k], xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color=colour, linewidth=2))
        ax.plot([], [], color=colour, label=f"$v_{k + 1}$ (dashed) and $M v_{k + 1} = s_{k + 1} u_{k + 1}$, "
                                             f"$s_{k + 1}$ = {s[k]:.2f}")
    reach = 1.15 * max(1.0, s[0])
    ax.set(xlim=(-reach, reach), ylim=(-reach, reach), aspect="equal", xlabel="first coordinate",
           ylabel="second coordinate", title=title if title is not None else "What a matrix does to a circle")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")
    return ax




# --- figures added for chapters 4 and 5 (keep this line) ---
def short_number(x: float, decimals: int = 2) -> str:
    """A number for a table: ``decimals`` decimals between 0.01 and 1000 (and for 0), two
    significant digits otherwise, and a dash for NaN."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, Real):
        raise TypeError(f"x must be a real number, got {x!r}")
    decimals = checks.integer(decimals, "decimals", 0, at_most=20)
    if not math.isfinite(x):
        return "–"
    return f"{x:.{decimals}f}" if x == 0 or 0.01 <= abs(x) < 1000 else f"{x:.2g}"


def results_table(summaries: Mapping[str, Any], caption: str = "") -> Table:
    """One row per variant, from its summary over seeds (``testbed.summarise``: arrays with one
    value per seed): accuracy (mean ± sd and range), the first-to-last gradient ratio at the start
    and the end (geometric mean over seeds), dead units, effective rank, diverged runs and time."""
    fields = ("accuracy", "ratio_start", "ratio_end", "dead", "eff_rank", "diverged", "seconds")
    if not isinstance(summaries, Mapping) or not summaries:
        raise TypeError(f"summaries must be a non-empty dict {{variant name: summary}}, "
                        f"got {summaries!r:.60}")
    for name, s in summaries.items():
        if not all(hasattr(s, f) for f in fields):
            raise TypeError(f"summaries[{name!r}] must be a summary over seeds (testbed.summarise(runs)), "
                            f"got {type(s).__name__}")
    checks.text(caption, "caption")
    rows = []
    for name, s in summaries.items():
        lo, hi = np.min(s.accuracy), np.max(s.accuracy)
        rows.append([name, mean_sd(s.accuracy), f"{lo:.1f} – {hi:.1f}",
                     short_number(stats.geometric_mean(s.ratio_start)),
                     short_number(stats.geometric_mean(s.ratio_end)),
                     short_number(stats.finite_mean(s.dead), 1),
                     short_number(stats.finite_mean(s.eff_rank), 1),
                     f"{int(np.sum(s.diverged))}/{len(s.diverged)}", f"{np.mean(s.seconds):.1f}"])
    header = ["variant", "accuracy (%)", "range (%)", "grad ratio, start", "grad ratio, end",
              "dead units (%)", "effective rank", "diverged", "time (s)"]
    return Table(header, rows, caption=caption)


PROBE_LABELS = {
    "grad_norm": r"$\|\partial L/\partial W\|$",
    "bias_grad_norm": r"$\|\partial L/\partial b\|$",
    "update_ratio": r"$\|\Delta W\| / \|W\|$",
    "weight_norm": r"$\|W\|$",
    "act_mean": "activation mean",
    "act_std": "activation std",
    "act_grad_rms": r"rms of $\partial L/\partial a$",
    "saturated": "fraction saturated",
    "dead": "fraction of dead units",
    "eff_rank": "effective rank",
}
PROBE_LOG_METRICS = {"grad_norm", "bias_grad_norm", "update_ratio", "weight_norm", "act_std", "act_grad_rms"}


def plot_probe_history(history: Any, metrics: Sequence[str] = ("grad_norm", "update_ratio", "act_std",
                                                                   "eff_rank"),
                 *, title: str, axes: Sequence | None = None, smooth: int = 1, ncols: int = 2,
                 layers: Sequence[int] | None = None) -> Sequence:
    """The per-layer picture over training: one panel per metric (``ncols`` to a row, 8 inches
    wide: the book's width), one line per layer coloured from the input side (dark) to the
    output side (light), with a colour bar naming the layers when there are more than six (a
    legend otherwise). Returns the axes.

    ``smooth`` averages each line over that many consecutive records (mini-batch gradients are
    noisy); ``layers`` (numbers from 1) draws only those layers, so that every line can be seen."""
    if not all(hasattr(history, a) for a in ("layers", "steps", "metrics")):
        raise TypeError(f"history must be what a probe recorded (probe.History, from probe.history() or a "
                        f"testbed Run's .probe), got {type(history).__name__}")
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty list of metric names, got {metrics!r}")
    for m in metrics:
        if m not in history.metrics or m not in PROBE_LABELS:
            raise ValueError(f"unknown metric {m!r}; this history holds {', '.join(history.metrics)}")
    smooth = checks.integer(smooth, "smooth")
    ncols = checks.integer(ncols, "ncols")
    checks.text(title, "title")
    if len(history.steps) == 0:
        raise ValueError("history is empty: the probe recorded no step")
    n = len(history.layers)
    if layers is None:
        shown = list(range(n))
    else:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, (Sequence, np.ndarray)) \
                or len(layers) == 0:
            raise ValueError(f"layers must be a non-empty list of layer numbers from 1 to {n}, "
                             f"got {layers!r}")
        shown = [checks.integer(l, "every entry of layers", 1, at_most=n) - 1 for l in layers]
    if axes is None:
        ncols = min(ncols, len(metrics))
        nrows = -(-len(metrics) // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(8, 2.7 * nrows + 0.5), squeeze=False,
                                 layout="constrained")
        for ax in grid.ravel()[len(metrics):]:
            ax.set_visible(False)
        axes = list(grid.ravel()[:len(metrics)])
        if title:
            fig.suptitle(title)
    elif isinstance(axes, (str, bytes)) or not isinstance(axes, (Sequence, np.ndarray)) \
            or len(axes) != len(metrics) or not all(isinstance(ax, plt.Axes) for ax in np.ravel(axes)):
        raise ValueError(f"axes must be a list of {len(metrics)} matplotlib Axes, one per metric, "
                         f"got {axes!r:.60}")
    axes = list(np.ravel(axes))
    cmap = plt.cm.viridis
    colours = cmap(np.linspace(0, 0.9, n))
    kernel = np.ones(smooth) / smooth
    for ax, m in zip(axes, metrics):
        values = history[m]
        for l in shown:
            y = values[:, l]
            steps = history.steps
            if smooth > 1 and len(y) >= smooth:
                y, steps = np.convolve(y, kernel, mode="valid"), steps[smooth - 1:]
            ax.plot(steps, y, color=colours[l], label=history.layers[l], linewidth=1.2)
        ax.set(xlabel="training step", ylabel=PROBE_LABELS[m])
        if m in PROBE_LOG_METRICS and np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig = axes[0].figure
    if n > 6:
        mappable = ScalarMappable(norm=Normalize(0.5, n + 0.5), cmap=ListedColormap(colours))
        ticks = [l + 1 for l in shown] if len(shown) <= 8 else sorted({1, (n + 1) // 2, n})
        bar = fig.colorbar(mappable, ax=axes, shrink=0.9, pad=0.02, ticks=ticks)
        bar.set_label("hidden layer")
    else:
        axes[0].legend(fontsize="small", title="layer")
    return axes

