"""Tests for nblib.interactive: sliders, the live ipywidgets face, the pre-rendered player, the
blitted redraw, and the checks on what comes in. (The player's script is exercised in a real
browser by tests/browser.)"""

from __future__ import annotations

import base64
import builtins
import io
import json
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from nblib.interactive import Explorer, Slider  # noqa: E402


def line_explorer(animated: bool = True, live_only: bool = False) -> Explorer:
    """A line y = a x (+ b), with sliders a (3 values) and b (2 values, or live only)."""
    fig, ax = plt.subplots(figsize=(3, 2))
    x = np.linspace(0, 1, 50)
    (line,) = ax.plot(x, x, animated=animated)
    ax.set(xlim=(-0.1, 1.1), ylim=(-1, 5), title="test")      # the line never touches the frame

    def update(a, b):
        line.set_ydata(a * x + (0.0 if b is None else b))
        return f"a={a:g} b={b}"

    sliders = [Slider("a", [1, 2, 3], label="slope"),
               Slider("b", [0, 1], label="shift", prerender=not live_only)]
    return Explorer(fig, update, sliders, title="Line <test>")


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def player_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" class="nblib-player-data">(.*?)</script>', html, re.S)
    assert match, "no frame data in the player"
    return json.loads(match.group(1))


# --- sliders -------------------------------------------------------------------------------------------
def test_slider_defaults():
    s = Slider("w", [1, 2, 3, 4])
    assert s.grid == (1.0, 2.0, 3.0, 4.0) and s.initial == 3.0 and s.initial_index == 2 and s.text == "w"
    assert Slider("w", [1, 2], start=1, label="weight").initial_index == 0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(name="not a name", values=[1, 2]), ValueError, "must be a Python identifier"),
    (dict(name="w", values="12"), TypeError, "values must be a list of numbers"),
    (dict(name="w", values=[1, "2"]), TypeError, "values must be finite numbers"),
    (dict(name="w", values=[1, np.nan]), TypeError, "values must be finite numbers"),
    (dict(name="w", values=[1]), ValueError, "at least two increasing numbers"),
    (dict(name="w", values=[2, 1]), ValueError, "at least two increasing numbers"),
    (dict(name="w", values=[1, 2], start=5), ValueError, "slider 'w': start must be one of 1, 2, got 5"),
    (dict(name="w", values=[1, 2], step=0), ValueError,
     "slider 'w': step must be a finite positive number, got 0"),
    (dict(name="w", values=[1, 2], step=np.nan), ValueError,
     "slider 'w': step must be a finite positive number, got nan"),
    (dict(name="w", values=[1, 2], step="0.1"), TypeError,
     "slider 'w': step must be a finite positive number"),
    (dict(name="w", values=[1, 2], start="a"), TypeError,
     "slider 'w': start must be a finite real number, got 'a'"),
    (dict(name="w", values=[1, 2], start=np.nan), ValueError,
     "slider 'w': start must be a finite real number"),
    (dict(name="w", values=[1, 2], fmt="{:d}"), ValueError,
     r"slider 'w': fmt must format one number, as '\{:.2f\}' does; '\{:d\}' fails on 1"),
    (dict(name="w", values=[1, 2], fmt="{x}"), ValueError, r"slider 'w': fmt must format one number"),
    (dict(name="w", values=[1, 2], fmt="{:.2q}"), ValueError, r"slider 'w': fmt must format one number"),
    (dict(name="w", values=[1, 2], label=3), TypeError, r"slider 'w': label must be a string, got 3"),
    (dict(name="w", values=[1, 2], fmt=3), TypeError, "fmt must be a format string"),
    (dict(name="w", values=[1, 2], prerender="yes"), TypeError, "prerender must be True or False"),
])
def test_bad_sliders_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        Slider(**kwargs)


# --- the explorer ------------------------------------------------------------------------------------------
def test_bad_explorers_are_refused():
    fig = plt.figure()
    ok = [Slider("a", [1, 2])]
    cases = [
        (lambda: Explorer("fig", lambda a: "", ok), TypeError, "figure must be a matplotlib Figure"),
        (lambda: Explorer(fig, 3, ok), TypeError, "update must be a function"),
        (lambda: Explorer(fig, lambda a: "", []), TypeError, "non-empty list of nblib.interactive.Slider"),
        (lambda: Explorer(fig, lambda a: "", ok[0]), TypeError, "non-empty list"),
        (lambda: Explorer(fig, lambda a: "", ok + ok), ValueError, "slider names must be different"),
        (lambda: Explorer(fig, lambda a, b: "", [Slider("a", np.arange(20.0)), Slider("b", np.arange(20.0))]),
         ValueError, "more than 200"),
        (lambda: Explorer(fig, lambda a: "", [Slider("a", [1, 2], prerender=False)]), ValueError,
         "at least one slider"),
        (lambda: Explorer(fig, lambda a: "", ok, dpi=5), ValueError,
         "dpi must be an integer from 20 to 300, got 5"),
        (lambda: Explorer(fig, lambda a: "", ok, dpi=72.0), TypeError,
         "dpi must be an integer from 20 to 300, got 72.0"),
        (lambda: Explorer(fig, lambda a: "", ok, colours=-1), ValueError,
         "colours must be an integer from 0 to 256"),
        (lambda: Explorer(fig, lambda a: "", ok, colours=1), ValueError, "colours must be 0"),
        (lambda: Explorer(fig, lambda a: "", ok, title=None), TypeError, "title must be a string"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()


def test_render_checks_its_values_and_the_readout():
    explorer = line_explorer()
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        explorer.render(a=1)
    with pytest.raises(ValueError, match="unknown \\['c'\\]"):
        explorer.render(a=1, b=0, c=2)
    fig = plt.figure()
    bad = Explorer(fig, lambda a: 42, [Slider("a", [1, 2])])
    with pytest.raises(TypeError, match="update must return a string"):
        bad.render(a=1)


def test_blitted_frames_match_a_full_draw():
    blitted, full = line_explorer(animated=True), line_explorer(animated=False)
    for a in (1, 3, 2):
        png_b, _ = blitted.render(a=a, b=1)
        png_f, _ = full.render(a=a, b=1)
        assert np.abs(pixels(png_b) - pixels(png_f)).max() <= 2     # the same picture, to antialiasing


def test_frames_cover_every_combination_last_slider_fastest():
    explorer = line_explorer()
    frames = explorer.frames()
    assert [r for _, r in frames] == [f"a={a} b={b:g}".replace("b=0", "b=0.0").replace("b=1", "b=1.0")
                                      for a in (1, 2, 3) for b in (0, 1)]
    assert len({png for png, _ in frames}) == 6


def test_live_only_sliders_are_passed_as_none_in_frames():
    explorer = line_explorer(live_only=True)
    assert [r for _, r in explorer.frames()] == ["a=1 b=None", "a=2 b=None", "a=3 b=None"]
    data = player_data(explorer.player_html())
    assert data["strides"] == [1] and len(data["frames"]) == 3


def test_player_is_self_contained_and_consistent():
    explorer = line_explorer()
    html = explorer.player_html()
    data = player_data(html)
    assert len(data["frames"]) == 6 and data["strides"] == [2, 1]
    assert data["labels"] == [["1", "2", "3"], ["0", "1"]]
    for frame in data["frames"]:
        assert base64.b64decode(frame)[:4] == b"\x89PNG"
    assert "http" not in html and "<script src" not in html            # nothing fetched from anywhere
    assert html.count('type="range"') == 2 and 'value="1"' in html     # a starts at its middle value, 2
    start = int(re.search(r'data-frame="(\d+)"', html).group(1))
    assert start == 1 * 2 + 1 and data["readouts"][start] == "a=2 b=1.0"
    assert "Line &lt;test&gt;" in html                                 # the title is escaped
    assert explorer.player_html() is html                              # computed once
    assert re.search(r'id="(nblib-player-[0-9a-f]{10})"', html)
    assert "const " not in html and "let " not in html                 # no global declarations to clash


def test_live_widget_redraws_when_a_slider_moves():
    pytest.importorskip("ipywidgets")
    explorer = line_explorer()
    box = explorer.live()
    assert explorer.live() is box
    controls = explorer._controls
    assert [c.description for c in controls] == ["slope", "shift"] and controls[0].value == 2
    image = box.children[-2]
    before = image.value
    controls[0].value = 3
    assert image.value != before and "a=3" in box.children[-1].value
    assert explorer.time_redraw(4) > 0
    assert controls[0].value == 2                                        # put back where it started
    explorer.close()
    assert explorer._widget is None


def test_mimebundle_has_both_faces():
    pytest.importorskip("ipywidgets")
    bundle = line_explorer()._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.jupyter.widget-view+json", "text/html", "text/plain"}
    assert "nblib-player" in bundle["text/html"] and "sliders slope, shift" in bundle["text/plain"]


@pytest.fixture
def no_ipywidgets(monkeypatch):
    """Make ``import ipywidgets`` fail, as where it is not installed."""
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("no ipywidgets here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)


def test_mimebundle_without_ipywidgets_is_the_player(no_ipywidgets):
    bundle = line_explorer()._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}


def test_numpy_integers_are_accepted_as_dpi_and_colours():
    fig = plt.figure()
    explorer = Explorer(fig, lambda a: "", [Slider("a", [1, 2], step=np.float32(0.5))], dpi=np.int64(72),
                        colours=np.int32(16))
    assert explorer.dpi == 72 and type(explorer.dpi) is int and explorer.colours == 16


def test_live_without_ipywidgets_says_what_to_install(no_ipywidgets):
    with pytest.raises(ImportError,
                       match=r"Explorer.live\(\) needs ipywidgets, which is not installed: "
                             r"pip install ipywidgets"):
        line_explorer().live()


def test_time_redraw_refuses_bad_steps():
    with pytest.raises(ValueError, match="steps must be at least 1"):
        line_explorer().time_redraw(0)
    with pytest.raises(TypeError, match="steps must be a positive integer"):
        line_explorer().time_redraw(2.5)
