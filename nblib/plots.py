"""Figures and tables drawn from the plain data that ``nblib.training`` and ``nblib.metrics`` return.

Every function takes numbers (lists or arrays), never a network or a data set, and returns the
matplotlib Axes it drew on (or an object that displays itself in Jupyter), so a notebook can
add to it. ``glue`` hands a computed number to the book's text (myst-nb), and quietly does
nothing outside a book build, e.g. on Colab.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np

Array = np.ndarray
DEPTH_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` available to the text as ``{glue:text}`name``` (myst-nb). Numpy scalars are
    handed over as plain Python numbers, so that format specs like ``:.2f`` work on them."""
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
    runs = np.atleast_2d(np.asarray(runs, dtype=float))
    (line,) = ax.plot(x, runs.mean(axis=0), label=label, color=colour)
    if len(runs) > 1:
        ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), color=line.get_color(), alpha=0.2,
                        linewidth=0)
    return ax


def accuracy_curves(curves: dict[str, Array], *, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Validation accuracy (in %) per epoch: one line per label, the mean over runs with the
    min-max band. ``curves[label]`` has one row per run (seed) and one column per epoch."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, (label, runs) in enumerate(curves.items()):
        runs = 100 * np.atleast_2d(np.asarray(runs, dtype=float))
        mean_band(ax, np.arange(1, runs.shape[1] + 1), runs, label, DEPTH_COLOURS[i % 6])
    ax.set(title=title, xlabel="epoch", ylabel="validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def neuron_bars(gradients: Sequence[Array], *, neurons: int = 6, title: str,
                axes: Sequence[plt.Axes] | None = None) -> Sequence[plt.Axes]:
    """Nielsen's picture of how fast each neuron learns: for each hidden layer, horizontal bars
    of dC/db for its first ``neurons`` neurons, all on one scale."""
    gradients = [np.asarray(g, dtype=float)[:neurons] for g in gradients]
    if axes is None:
        fig, axes = plt.subplots(1, len(gradients), figsize=(3.2 * len(gradients), 3), sharex=True,
                                 squeeze=False)
        axes = axes[0]
        fig.suptitle(title)
    limit = 1.1 * max(np.abs(g).max() for g in gradients)
    for l, (ax, g) in enumerate(zip(axes, gradients), start=1):
        ax.barh(np.arange(len(g)), g, color=DEPTH_COLOURS[l - 1])
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
    speeds = np.asarray(speeds, dtype=float)
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    epochs = np.arange(len(speeds))
    for l in range(speeds.shape[1]):
        colour = DEPTH_COLOURS[l % 6]
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
        self.header, self.rows, self.caption = list(header), [list(r) for r in rows], caption

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
    """'mean ± sd' of ``values`` times ``scale`` (the sample standard deviation, n - 1)."""
    values = scale * np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {sd:.{digits}f}"
