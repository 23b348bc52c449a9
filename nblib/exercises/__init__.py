"""Checking a reader's answers to the exercises: helpful feedback, never a bare traceback.

A checker is a function decorated with :func:`checker`. Inside it, the helpers of this module
turn the reader's answer into something usable (:func:`as_number`, :func:`as_array`,
:func:`as_function`, :func:`call`) or raise :class:`Problem` with a message written for the
reader: a wrong type, a NaN, a function that raises. The decorator turns a ``Problem`` (and,
as a last resort, any error of the checker itself) into a :class:`Feedback`, so that the
reader always sees a short verdict and what to do next. A ``Feedback`` shows itself as a
coloured box in Jupyter and in the book, and as plain text elsewhere::

    from nblib.exercises import Feedback, Problem, as_number, checker

    @checker("Exercise 1: the largest derivative")
    def check_max(answer) -> Feedback:
        value = as_number(answer, "your answer")
        feedback = Feedback("Exercise 1: the largest derivative")
        if abs(value - 0.25) < 1e-6:
            return feedback.correct(f"Yes: the maximum is {value:g}.")
        return feedback.wrong(f"{value:g} is not the maximum.").hint("Where is sigma'(z) largest?")

Chapters put their checkers in ``nblib/exercises/<topic>.py``, one module per chapter.

**Grading mode.** With the environment variable ``NBLIB_GRADING=1`` (set by ``make grade``), a
checker whose verdict is not "passed" raises :class:`NotYet` after printing its feedback, so
that the notebook cell fails under nbval; a reader's function that runs past its time limit
raises :class:`OutOfTime`; a bug in a checker raises :class:`CheckerError`. Checkers that test
a function on sample inputs draw fresh ones at grading time (:func:`sample`), seeded by
``NBLIB_GRADING_SEED`` when it is set, so that a table of the public inputs does not pass.
"""

from __future__ import annotations

import contextlib
import functools
import html
import linecache
import math
import os
import secrets
import signal
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

Array = np.ndarray

# What each kind of line says, how it is marked in plain text, and its colour in HTML.
_KINDS = {
    "correct": ("✔", "#1a7f37"),
    "wrong": ("✘", "#cf222e"),
    "hint": ("→", "#9a6700"),
    "info": ("·", "#57606a"),
}


class Problem(Exception):
    """The reader's answer cannot be checked, for the reason in the message (written for the
    reader). ``hint``, if given, says what to try."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class TooSlow(Problem):
    """The reader's function ran past the time a checker gives it (an endless loop?)."""


class NotYet(AssertionError):
    """Grading mode: the answer did not pass (the message is the checker's feedback)."""


class OutOfTime(NotYet):
    """Grading mode: the reader's function ran past its time limit."""


class CheckerError(RuntimeError):
    """Grading mode: the checker itself failed (a bug in the book, not in the answer)."""


class _Alarm(BaseException):
    """Raised by the time limit's signal handler; a BaseException, so that a reader's
    ``except Exception`` cannot swallow it."""


# --- grading mode ----------------------------------------------------------------------------
GRADING_VARIABLE, SEED_VARIABLE = "NBLIB_GRADING", "NBLIB_GRADING_SEED"


def grading() -> bool:
    """True when the checkers run in grading mode (``NBLIB_GRADING=1``)."""
    return os.environ.get(GRADING_VARIABLE, "") == "1"


_drawn_seed: int | None = None


def grading_seed() -> int:
    """The seed of this grading session's sample inputs: ``NBLIB_GRADING_SEED`` if it is set (so
    that a grading run can be repeated), otherwise one drawn once per process."""
    global _drawn_seed
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if text:
        if not text.isdigit():
            raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {text!r}")
        return int(text)
    if _drawn_seed is None:
        _drawn_seed = secrets.randbits(63)
    return _drawn_seed


def sample(public: Sequence[Any], draw: Callable[[np.random.Generator], Sequence[Any]],
           name: str) -> list[Any]:
    """The inputs a checker tries: ``public`` (shown in the book and the feedback) normally, and
    in grading mode ``draw(rng)``, fresh inputs from a generator seeded by the grading seed and
    ``name`` (so each checker gets its own stream)."""
    if not grading():
        return list(public)
    stream = int.from_bytes(name.encode()[:16].ljust(16, b"\0"), "little")
    return list(draw(np.random.default_rng([grading_seed(), stream])))


@dataclass
class Feedback:
    """A checker's verdict: a title, whether the answer passed, and lines of explanation.

    The ``correct``, ``wrong``, ``hint`` and ``info`` methods add a line and return the
    feedback itself, so they chain. ``passed`` is ``None`` until ``correct`` or ``wrong`` is
    called (a ``wrong`` line makes it ``False`` for good). ``rows`` (with ``header``) is an
    optional small table of details, e.g. the reader's values beside the right ones.
    """

    title: str
    passed: bool | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.title, str):
            raise TypeError(f"title must be a string, got {self.title!r}")

    def _add(self, kind: str, text: str) -> "Feedback":
        if not isinstance(text, str):
            raise TypeError(f"feedback text must be a string, got {text!r}")
        self.lines.append((kind, text))
        return self

    def correct(self, text: str) -> "Feedback":
        """Say what is right. The answer passes unless something was already found wrong."""
        if self.passed is None:
            self.passed = True
        return self._add("correct", text)

    def wrong(self, text: str) -> "Feedback":
        """Say what is wrong (and by how much). The answer does not pass."""
        self.passed = False
        return self._add("wrong", text)

    def hint(self, text: str) -> "Feedback":
        """Say what to try next."""
        return self._add("hint", text)

    def info(self, text: str) -> "Feedback":
        """A neutral remark."""
        return self._add("info", text)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> "Feedback":
        """Attach a small table of details (replaces any earlier one)."""
        self.header, self.rows = [str(h) for h in header], [list(r) for r in rows]
        return self

    @property
    def verdict(self) -> str:
        return {True: "passed", False: "not yet", None: "no verdict"}[self.passed]

    def __str__(self) -> str:
        out = [f"{self.title}: {self.verdict}"]
        out += [f"  {_KINDS[kind][0]} {text}" for kind, text in self.lines]
        if self.rows:
            widths = [max(len(str(v)) for v in col) for col in zip(self.header, *self.rows)]
            fmt = lambda r: "    " + "  ".join(str(v).rjust(w) for v, w in zip(r, widths))  # noqa: E731
            out += [fmt(self.header)] + [fmt(r) for r in self.rows]
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {True: "#1a7f37", False: "#cf222e", None: "#57606a"}[self.passed]
        items = "".join(
            f'<li style="list-style:none;margin:0.15em 0"><span style="color:{_KINDS[k][1]};'
            f'font-weight:bold">{_KINDS[k][0]}</span> {html.escape(t)}</li>' for k, t in self.lines)
        table = ""
        if self.rows:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                           for r in self.rows)
            table = (f'<table style="margin:0.4em 0 0 1.2em"><thead><tr>{head}</tr></thead>'
                     f'<tbody>{body}</tbody></table>')
        return (f'<div class="nblib-feedback" style="border-left:4px solid {colour};padding:0.4em 0.8em;'
                f'margin:0.3em 0"><div><strong>{html.escape(self.title)}</strong>: '
                f'<span style="color:{colour};font-weight:bold">{self.verdict}</span></div>'
                f'<ul style="padding-left:0.2em;margin:0.3em 0">{items}</ul>{table}</div>')


def checker(title: str) -> Callable[[Callable[..., Feedback]], Callable[..., Feedback]]:
    """Decorate a checking function so that it always returns a :class:`Feedback` titled
    ``title``: a :class:`Problem` raised inside becomes a failed verdict with its message and
    hint, and any other error (a bug in the checker, not in the answer) becomes a verdict
    saying so, with the error's one-line summary instead of a traceback. In grading mode
    (:func:`grading`) a verdict other than "passed" is printed and raised (:class:`NotYet`,
    :class:`OutOfTime`, :class:`CheckerError`), so that the cell fails."""
    if not isinstance(title, str):
        raise TypeError(f"checker title must be a string, got {title!r}")

    def decorate(check: Callable[..., Feedback]) -> Callable[..., Feedback]:
        @functools.wraps(check)
        def wrapper(*args: Any, **kwargs: Any) -> Feedback:
            failure: type[BaseException] = NotYet
            try:
                result = check(*args, **kwargs)
            except Problem as problem:
                result = Feedback(title).wrong(problem.message)
                if problem.hint:
                    result.hint(problem.hint)
                failure = OutOfTime if isinstance(problem, TooSlow) else NotYet
            except Exception as exc:  # noqa: BLE001 - the reader must never see a traceback
                result = Feedback(title).info(
                    f"The checker itself failed ({type(exc).__name__}: {exc}); this is a bug in the "
                    "book, not in your answer. Please report it.")
                failure = CheckerError
            if not isinstance(result, Feedback):
                result = Feedback(title).info(f"The checker returned {type(result).__name__}, not feedback "
                                              "(a bug in the book).")
                failure = CheckerError
            if grading() and result.passed is not True:
                print(result)
                raise failure(str(result))
            return result
        return wrapper
    return decorate


# --- turning answers into something usable --------------------------------------------------
def describe(value: Any) -> str:
    """A short description of a value for a message: its type, and the value if it is short."""
    text = repr(value)
    kind = type(value).__name__
    return f"{kind} {text}" if len(text) <= 40 else f"a {kind}"


def as_number(value: Any, name: str, *, positive: bool = False, integer: bool = False) -> float:
    """``value`` as a finite float (or an int if ``integer``), or a :class:`Problem` naming
    ``name``. Python and numpy numbers and one-element arrays are accepted; booleans, strings,
    None, NaN and infinities are not."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.integer, np.floating)):
        hint = "Put a number there, e.g. 1.5." if value is None or value is Ellipsis else None
        if isinstance(value, str):
            hint = "Remove the quotes: write the number itself, not text."
        raise Problem(f"{name} should be a number, but it is {describe(value)}.", hint)
    number = float(value)
    if math.isnan(number):
        raise Problem(f"{name} is NaN (not a number).",
                      "NaN usually comes from 0/0, inf - inf or log of a negative number in the computation.")
    if math.isinf(number):
        raise Problem(f"{name} is infinite.",
                      "Something overflowed: look for a division by zero or exp of a large number.")
    if positive and number <= 0:
        raise Problem(f"{name} should be positive, but it is {number:g}.")
    if integer:
        if number != round(number):
            raise Problem(f"{name} should be a whole number, but it is {number:g}.")
        return int(round(number))
    return number


def as_array(value: Any, name: str, *, shape: tuple[int, ...] | None = None) -> Array:
    """``value`` as a float64 array of finite numbers (with ``shape``, if given), or a
    :class:`Problem` that says which entries are wrong."""
    if value is None or value is Ellipsis:
        raise Problem(f"{name} should be an array of numbers, but it is {describe(value)}.",
                      f"Put your numbers there, e.g. {name} = [0.5, 1.5].")
    if isinstance(value, (str, bytes)):
        raise Problem(f"{name} should be an array of numbers, but it is {describe(value)}.")
    if isinstance(value, (list, tuple)) and any(v is Ellipsis or v is None for v in value):
        raise Problem(f"{name} still has a {'...' if Ellipsis in value else 'None'} in it.",
                      "Replace every ... with a number.")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise Problem(f"{name} should be an array of numbers; numpy could not read it as one "
                      f"({exc}).") from None
    if shape is not None and arr.shape != tuple(shape):
        raise Problem(f"{name} should have shape {tuple(shape)}, but it has shape {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[:3].tolist()
        raise Problem(f"{name} has {int(bad.sum())} NaN or infinite entr{'y' if bad.sum() == 1 else 'ies'} "
                      f"(first at index {', '.join(map(str, where))}).")
    return arr


def as_function(value: Any, name: str) -> Callable[..., Any]:
    """``value`` if it can be called, else a :class:`Problem`."""
    if not callable(value):
        raise Problem(f"{name} should be a function, but it is {describe(value)}.",
                      "Pass the function itself, without calling it: f, not f(...).")
    return value


CALL_SECONDS = 10.0        # how long a checker lets one call of the reader's function run


def call(function: Callable[..., Any], *args: Any, name: str = "your function",
         seconds: float | None = CALL_SECONDS, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``; if it raises, a :class:`Problem` that names the error,
    the arguments and the line of the reader's code where it happened (never a traceback); if it
    runs longer than ``seconds``, a :class:`TooSlow` (where the platform allows a time limit:
    the main thread of a Unix process, as in a Jupyter kernel). Warnings it emits (e.g. numpy
    overflow) are not shown to the reader."""
    shown = ", ".join([_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with np.errstate(all="ignore"), _time_limit(seconds):
                return function(*args, **kwargs)
        except _Alarm:
            raise TooSlow(f"{name} was still running after {seconds:g} s when called with ({shown}).",
                          "Look for a loop that never ends, or a loop over far more values than needed: "
                          "numpy can compute on whole arrays at once.") from None
        except Exception as exc:  # noqa: BLE001 - any error in the reader's code becomes feedback
            raise Problem(f"{name} raised {type(exc).__name__}: {exc} when called with ({shown})"
                          f"{_where(exc)}.") from None


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_Alarm` in this thread after ``seconds`` (no limit where signals cannot do it)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def ring(signum: int, frame: Any) -> None:
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def as_bool(value: Any, name: str) -> bool:
    """``value`` as True or False (Python or numpy booleans), or a :class:`Problem`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    hint = "Write True or False, without quotes." if isinstance(value, str) else "Write True or False."
    raise Problem(f"{name} should be True or False, but it is {describe(value)}.", hint)


def as_word(value: Any, name: str, words: Sequence[str]) -> str:
    """``value`` as one of ``words`` (case and surrounding spaces ignored), or a :class:`Problem`
    that lists them."""
    listed = ", ".join(f'"{w}"' for w in words)
    if not isinstance(value, str):
        raise Problem(f"{name} should be one of {listed}, but it is {describe(value)}.",
                      f'Write the word in quotes, e.g. {name} = "{words[0]}".')
    word = value.strip().lower()
    if word not in [w.lower() for w in words]:
        raise Problem(f'{name} should be one of {listed}, but it is "{value}".')
    return word


def as_choices(value: Any, name: str, options: Mapping[str, str]) -> list[str]:
    """The letters of a multiple-choice answer, sorted: ``"B"``, ``"b, d"``, ``"BD"`` or
    ``["B", "D"]``, each one of ``options`` (letter -> statement), or a :class:`Problem`."""
    letters = ", ".join(options)
    if value is None or value is Ellipsis:
        raise Problem(f"{name} is still empty.",
                      f'Write the letters of the statements you choose, e.g. {name} = "A".')
    if isinstance(value, str):
        picked = [c for c in value.upper() if not c.isspace() and c not in ",;/&+"]
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        picked = [v.strip().upper() for v in value]
    else:
        raise Problem(f"{name} should be letters among {letters}, but it is {describe(value)}.",
                      f'For example: {name} = "A" or {name} = ["A", "C"].')
    unknown = sorted(set(picked) - set(options))
    if unknown:
        raise Problem(f"{name} names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
                      f"not among the choices {letters}.")
    if not picked:
        raise Problem(f"{name} names no statement.", f"Write one or more of the letters {letters}.")
    return sorted(set(picked))


def show_choices(options: Mapping[str, str]) -> Any:
    """The statements of a multiple-choice question as a Markdown list, for a notebook cell
    (plain text where IPython is missing)."""
    text = "\n".join(f"- **{letter}.** {statement}" for letter, statement in options.items())
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - outside Jupyter
        return text
    return Markdown(text)


def grade_choices(feedback: Feedback, picked: Sequence[str], right: Sequence[str],
                  explanations: Mapping[str, str]) -> Feedback:
    """Add a line for every statement of a multiple-choice question: whether the reader got it
    right (chose a true one, or left out a false one) and why (``explanations[letter]``)."""
    for letter, why in explanations.items():
        chosen, true = letter in picked, letter in right
        if chosen == true:
            feedback.correct(f"{letter}: {'right to choose it' if true else 'right to leave it out'}. {why}")
        else:
            feedback.wrong(f"{letter}: {'this one is true too' if true else 'this one is not true'}. {why}")
    return feedback


def close_enough(got: float, want: float, *, rtol: float = 1e-2, atol: float = 0.0) -> bool:
    """Whether ``got`` is within ``atol + rtol * |want|`` of ``want``."""
    return abs(got - want) <= atol + rtol * abs(want)


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 30 else f"a {type(value).__name__}"


def _where(exc: BaseException) -> str:
    """', at line N: <code>' for the innermost frame outside nblib and the standard library."""
    frames = traceback.extract_tb(exc.__traceback__)
    library = (str(__file__).rsplit("exercises", 1)[0], sys.prefix, sys.base_prefix)
    for frame in reversed(frames):
        if not frame.filename.startswith(library):
            code = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
            return f", at line {frame.lineno}: {code}" if code else f", at line {frame.lineno}"
    return ""
