"""Figures with sliders that work both in a live notebook and in the static HTML book.

An :class:`Explorer` wraps a matplotlib figure and an ``update(**values)`` function that
changes the figure's artists for the slider values it is given (and may return a one-line
readout). Displayed in a notebook, it gives one output with two faces:

- **live** (Jupyter, Binder, Colab): ipywidgets sliders; each step calls ``update``, redraws
  the figure into an image widget and shows the readout;
- **pre-rendered** (the book, read without a kernel): the figure is drawn for every
  combination of the sliders' ``values`` when the notebook is executed, and a small
  self-contained HTML player (no external scripts) shows the frame for the slider
  positions. Moving a slider really changes the picture.

The book's configuration (``_config.yml``) tells myst-nb to skip the ipywidgets view in the
HTML build, so the book shows the pre-rendered face; a live notebook shows the widgets.
Importing this module does not import ipywidgets (it is needed only for the live face).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import time
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import checks
from ._optional import require
from .checks import integer

MAX_FRAMES = 200          # a pre-rendered player embeds every frame in the page: keep it small


@dataclass(frozen=True)
class Slider:
    """One slider: the keyword ``name`` passed to ``update``, the ``values`` pre-rendered for the
    book (in order), the ``label`` shown beside it, the initial value ``start`` (one of
    ``values``; default the middle one) and the live slider's ``step`` (default: 1/100 of the
    range). The live slider runs from the smallest to the largest of ``values``. A slider with
    ``prerender=False`` is live only: the pre-rendered frames pass ``None`` for it, and
    ``update`` decides what that means (say so in the figure or the readout)."""

    name: str
    values: Sequence[float]
    label: str = ""
    start: float | None = None
    step: float | None = None
    fmt: str = "{:g}"
    prerender: bool = True
    _values: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"slider name must be a Python identifier (it is passed as a keyword), "
                             f"got {self.name!r}")
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, (Sequence, np.ndarray)):
            raise TypeError(f"slider {self.name!r}: values must be a list of numbers, got {self.values!r}")
        values = []
        for v in self.values:
            if (isinstance(v, bool) or not isinstance(v, (Real, np.floating, np.integer))
                    or not np.isfinite(v)):
                raise TypeError(f"slider {self.name!r}: values must be finite numbers, got {v!r}")
            values.append(float(v))
        if len(values) < 2 or any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"slider {self.name!r}: values must be at least two increasing numbers, "
                             f"got {values}")
        object.__setattr__(self, "_values", tuple(values))
        if self.start is not None:
            self._checked(checks.choice, self._checked(checks.number, self.start, "start"), "start",
                          allowed=values)
        if self.step is not None:
            self._checked(checks.number, self.step, "step", positive=True)
        self._checked(checks.boolean, self.prerender, "prerender")
        self._checked(checks.text, self.label, "label")
        if not isinstance(self.fmt, str):
            raise TypeError(f"slider {self.name!r}: fmt must be a format string such as '{{:.2f}}', "
                            f"got {self.fmt!r}")
        try:
            self.fmt.format(values[0])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"slider {self.name!r}: fmt must format one number, as '{{:.2f}}' does; "
                             f"{self.fmt!r} fails on {values[0]:g} ({type(exc).__name__}: {exc})") from None

    def _checked(self, check: Callable[..., Any], value: Any, name: str, **kwargs: Any) -> Any:
        """``check(value, name)``, its message prefixed with the slider's name."""
        try:
            return check(value, name, **kwargs)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"slider {self.name!r}: {exc}") from None

    @property
    def grid(self) -> tuple[float, ...]:
        """The pre-rendered values, as floats."""
        return self._values

    @property
    def initial(self) -> float:
        return float(self.start) if self.start is not None else self._values[len(self._values) // 2]

    @property
    def initial_index(self) -> int:
        return self._values.index(self.initial)

    @property
    def text(self) -> str:
        return self.label or self.name


class Explorer:
    """A figure with sliders, live in a notebook and pre-rendered in the book (see the module).

    ``update(**values)`` receives one keyword per slider, changes ``figure``'s artists, and may
    return a short readout string (or None). Mark the artists that ``update`` changes as
    animated (``animated=True``): the rest is then drawn once and reused, and a live step is
    several times faster (artists not so marked must not change). ``dpi`` sets the resolution
    of the images, ``colours`` the size of the palette of pre-rendered frames (smaller pages;
    0 keeps full colour). The figure is closed in pyplot, so that it is not also shown as a
    plain image.
    """

    def __init__(self, figure: Figure, update: Callable[..., str | None], sliders: Sequence[Slider], *,
                 title: str = "", dpi: int = 72, colours: int = 32) -> None:
        if not isinstance(figure, Figure):
            raise TypeError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
        if not callable(update):
            raise TypeError(f"update must be a function of the slider values, got {update!r}")
        if isinstance(sliders, Slider) or not isinstance(sliders, Sequence) or not sliders \
                or not all(isinstance(s, Slider) for s in sliders):
            raise TypeError("sliders must be a non-empty list of nblib.interactive.Slider")
        names = [s.name for s in sliders]
        if len(set(names)) != len(names):
            raise ValueError(f"slider names must be different, got {names}")
        if not any(s.prerender for s in sliders):
            raise ValueError("at least one slider must be pre-rendered (prerender=True)")
        frames = int(np.prod([len(s.grid) for s in sliders if s.prerender]))
        if frames > MAX_FRAMES:
            raise ValueError(f"{frames} pre-rendered frames (the product of the sliders' numbers of values) "
                             f"is more than {MAX_FRAMES}: use fewer values")
        dpi = checks.integer(dpi, "dpi", 20, at_most=300)
        colours = checks.integer(colours, "colours", 0, at_most=256)
        if colours == 1:
            raise ValueError("colours must be 0 (full colour) or an integer from 2 to 256, got 1")
        checks.text(title, "title")
        self.figure, self.update, self.sliders = figure, update, list(sliders)
        self.title, self.dpi, self.colours = title, dpi, colours
        figure.set_dpi(dpi)
        # draw with Agg whatever the notebook's backend (the inline backend's canvas is Agg already)
        self._canvas = (figure.canvas if isinstance(figure.canvas, FigureCanvasAgg)
                        else FigureCanvasAgg(figure))
        self._html: str | None = None
        self._background: Any = None
        self._widget: Any = None
        self._controls: list[Any] = []
        plt.close(figure)

    # --- drawing ----------------------------------------------------------------------------------
    def render(self, *, quantize: bool = False, **values: float) -> tuple[bytes, str]:
        """Draw the figure for ``values`` (one per slider) and return (PNG bytes, readout)."""
        missing = {s.name for s in self.sliders} - set(values)
        extra = set(values) - {s.name for s in self.sliders}
        if missing or extra:
            raise ValueError(f"render needs exactly the sliders' values {[s.name for s in self.sliders]}; "
                             f"missing {sorted(missing)}, unknown {sorted(extra)}")
        readout = self.update(**values)
        if readout is not None and not isinstance(readout, str):
            raise TypeError(f"update must return a string (the readout) or None, "
                            f"got {type(readout).__name__}")
        self._draw()
        return _encode(self._canvas, self.colours if quantize else 0), readout or ""

    def _draw(self) -> None:
        """Draw the figure. Artists marked animated (``set_animated(True)``, or ``animated=True``
        when made) are drawn over a cached picture of everything else ("blitting"): a slider step
        then redraws only what moves, several times faster than a full draw."""
        animated = sorted((a for a in self.figure.findobj(lambda a: a.get_animated()) if a.get_visible()),
                          key=lambda a: a.get_zorder())
        if not animated:
            self._canvas.draw()
            return
        if self._background is None:
            self._canvas.draw()                            # draws everything that is not animated
            self._background = self._canvas.copy_from_bbox(self.figure.bbox)
        else:
            self._canvas.restore_region(self._background)
        renderer = self._canvas.get_renderer()
        for artist in animated:
            artist.draw(renderer)

    @property
    def prerendered(self) -> list[Slider]:
        """The sliders the book's player has (live-only sliders left out)."""
        return [s for s in self.sliders if s.prerender]

    def frames(self) -> list[tuple[bytes, str]]:
        """Every pre-rendered frame, (PNG, readout), the last slider varying fastest; live-only
        sliders are passed as None."""
        out = []
        fixed = {s.name: None for s in self.sliders if not s.prerender}
        for combo in itertools.product(*(s.grid for s in self.prerendered)):
            values = dict(zip((s.name for s in self.prerendered), combo), **fixed)
            out.append(self.render(quantize=True, **values))
        self.render(**{s.name: s.initial for s in self.sliders})  # leave the figure at the start
        return out

    # --- the pre-rendered face --------------------------------------------------------------------
    def player_html(self) -> str:
        """A self-contained HTML slider player over the pre-rendered frames (computed once)."""
        if self._html is None:
            self._html = _player(self.frames(), self.prerendered, self.title)
        return self._html

    # --- the live face ----------------------------------------------------------------------------
    def live(self) -> Any:
        """The ipywidgets view: one slider per ``Slider`` above the figure and its readout."""
        if self._widget is not None:
            return self._widget
        widgets = require("ipywidgets", "Explorer.live()")

        controls = []
        for s in self.sliders:
            lo, hi = s.grid[0], s.grid[-1]
            controls.append(widgets.FloatSlider(value=s.initial, min=lo, max=hi,
                                                step=s.step or (hi - lo) / 100,
                                                description=s.text, continuous_update=True,
                                                readout_format=".3g", style={"description_width": "initial"}))
        png, readout = self.render(**{s.name: s.initial for s in self.sliders})
        image = widgets.Image(value=png, format="png", layout=widgets.Layout(max_width="100%"))
        text = widgets.HTML(value=html.escape(readout))

        def redraw(_: Any = None) -> None:
            png, readout = self.render(**{s.name: c.value for s, c in zip(self.sliders, controls)})
            image.value, text.value = png, html.escape(readout)

        for c in controls:
            c.observe(redraw, names="value")
        title = [widgets.HTML(value=f"<strong>{html.escape(self.title)}</strong>")] if self.title else []
        self._widget = widgets.VBox(
            title + [widgets.HBox(controls, layout=widgets.Layout(flex_flow="row wrap")), image, text])
        self._controls = controls
        return self._widget

    def time_redraw(self, steps: int = 20) -> float:
        """Median milliseconds of one live slider step: the time the widget callback takes (the
        figure updated, drawn, encoded and handed to the image widget) when a slider moves.
        The ``steps`` moves go round the sliders in turn, each across its range."""
        steps = integer(steps, "steps")
        self.live()
        times = []
        for k in range(steps):
            control = self._controls[k % len(self._controls)]
            target = control.min + (control.max - control.min) * ((7 * k + 3) % 11) / 10
            if abs(target - control.value) < control.step:
                target = control.max if control.value < (control.min + control.max) / 2 else control.min
            start = time.perf_counter()
            control.value = target                      # runs the callback, as a slider move does
            times.append(1000 * (time.perf_counter() - start))
        for s, c in zip(self.sliders, self._controls):
            c.value = s.initial
        return float(np.median(times))

    def close(self) -> None:
        """Close the live widgets (a notebook then keeps no state for them) and free the figure."""
        if self._widget is not None:
            for child in [self._widget, *self._widget.children, *self._controls]:
                child.close()
            self._widget, self._controls = None, []

    # --- display ----------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        try:
            bundle.update(self.live()._repr_mimebundle_())
        except ImportError:  # no ipywidgets: the pre-rendered player alone
            pass
        bundle["text/html"] = self.player_html()
        bundle["text/plain"] = (f"{self.title or 'Explorer'}: sliders "
                                f"{', '.join(s.text for s in self.sliders)} (run in Jupyter to use them)")
        return bundle


def _encode(canvas: FigureCanvasAgg, colours: int) -> bytes:
    """Encode the drawn canvas as PNG: fast (little compression) for a live step, or reduced
    to a palette of ``colours`` colours and well compressed for a pre-rendered frame (line
    plots lose nothing visible, and the page stays small)."""
    from PIL import Image

    image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    out = io.BytesIO()
    if colours:
        image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, format="PNG", optimize=True)
    else:
        image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _player(frames: list[tuple[bytes, str]], sliders: list[Slider], title: str) -> str:
    """The HTML of a player: the image, the readout, one range input per slider, and a short
    inline script that picks frame sum_i index_i * stride_i. Everything is inline."""
    images = [base64.b64encode(png).decode("ascii") for png, _ in frames]
    uid = "nblib-player-" + hashlib.sha1("".join(images[:1] + [title]).encode()).hexdigest()[:10]
    strides = [int(np.prod([len(s.grid) for s in sliders[i + 1:]])) for i in range(len(sliders))]
    start = sum(s.initial_index * k for s, k in zip(sliders, strides))
    data = {"frames": images, "readouts": [r for _, r in frames], "strides": strides,
            "labels": [[s.fmt.format(v) for v in s.grid] for s in sliders]}
    inputs = "".join(
        f'<label style="margin-right:1.5em;white-space:nowrap">{html.escape(s.text)} '
        f'<input type="range" min="0" max="{len(s.grid) - 1}" step="1" value="{s.initial_index}" '
        f'data-slider="{i}" aria-label="{html.escape(s.text)}" style="vertical-align:middle"> '
        f'<output>{html.escape(s.fmt.format(s.initial))}</output></label>' for i, s in enumerate(sliders))
    heading = f'<div><strong>{html.escape(title)}</strong></div>' if title else ""
    note = (f"Pre-rendered: {len(frames)} frames computed when this page was built "
            f"({' × '.join(str(len(s.grid)) for s in sliders)} slider positions). "
            "Open the notebook (launch button at the top) for continuous sliders.")
    script = (
        "(function(){var root=document.getElementById('%s');"
        "var data=JSON.parse(root.querySelector('script.nblib-player-data').textContent);"
        "var img=root.querySelector('img'),readout=root.querySelector('.nblib-player-readout');"
        "var inputs=root.querySelectorAll('input[data-slider]');"
        "function show(){var k=0;inputs.forEach(function(el){var i=+el.dataset.slider;"
        "k+=(+el.value)*data.strides[i];el.parentNode.querySelector('output').textContent=data.labels[i][+el.value];});"
        "img.src='data:image/png;base64,'+data.frames[k];img.dataset.frame=k;readout.textContent=data.readouts[k];}"
        "inputs.forEach(function(el){el.addEventListener('input',show);});show();})();" % uid)
    payload = json.dumps(data).replace("</", "<\\/")
    return (f'<div class="nblib-player" id="{uid}">{heading}'
            f'<div style="margin:0.3em 0">{inputs}</div>'
            f'<img src="data:image/png;base64,{images[start]}" data-frame="{start}" '
            f'alt="{html.escape(title or "figure")}" '
            f'style="max-width:100%;height:auto">'
            f'<div class="nblib-player-readout" style="font-family:monospace;font-size:0.85em">'
            f'{html.escape(frames[start][1])}</div>'
            f'<div style="font-size:0.85em;opacity:0.75">{html.escape(note)}</div>'
            f'<script type="application/json" class="nblib-player-data">{payload}</script>'
            f'<script>{script}</script></div>')
