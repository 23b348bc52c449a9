"""Chapter 3's exercise: read three initialisations' singular values, predict which trains fastest.

``candidates()`` gives three initialisations of a 30-layer linear network of width 64, named
"A", "B" and "C" (what they are is the point of the exercise: the reader sees only numbers).
``race()`` trains them exactly as the chapter trains its networks and returns their losses.
``check_ranking(ranking)`` compares the reader's ranking, fastest first, with the race.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from .. import linear
from . import Feedback, Problem, checker, describe

NAMES = ("A", "B", "C")
DEPTH, WIDTH, SEED = 30, 64, 11
STEPS, LR = 600, 0.01


def candidates(runs: int = 3, *, seed: int = SEED) -> dict[str, torch.Tensor]:
    """The three initial stacks, each of shape (runs, 30, 64, 64), on the default device."""
    return {
        "A": linear.gaussian(runs, DEPTH, WIDTH, seed=seed),
        "B": linear.orthogonal(runs, DEPTH, WIDTH, seed=seed, scale=0.95),
        "C": linear.fold(linear.gaussian(runs, DEPTH, WIDTH, seed=seed + 1)),
    }


@functools.lru_cache(maxsize=4)
def race(runs: int = 3, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Train every candidate for ``steps`` steps of the chapter's SGD (learning rate 0.01,
    batches of 64, the chapter's target map) and return each one's final loss, one per run.
    Cached: the same arguments give the same result without training again."""
    nets = candidates(runs)
    target = linear.target_map(WIDTH, seed=1000)
    history = linear.train(torch.cat(list(nets.values())), target, steps=steps, lr=LR,
                           record_every=steps, seed=0, progress=False)
    return {name: h.loss[:, -1] for name, h in history.split({k: runs for k in nets}).items()}


def _as_ranking(ranking: Any) -> list[str]:
    if ranking is None or ranking is Ellipsis:
        raise Problem("You have not given a ranking yet.",
                      'Write the three names, fastest first, e.g. ranking = ["C", "A", "B"].')
    if isinstance(ranking, str):
        ranking = [c for c in ranking if not c.isspace() and c not in ",;>"]
    if not isinstance(ranking, (list, tuple)):
        raise Problem(f"The ranking should be a list of the names A, B and C, but it is {describe(ranking)}.",
                      'For example: ranking = ["C", "A", "B"].')
    names = [str(r).strip().upper() for r in ranking]
    if sorted(names) != sorted(NAMES):
        raise Problem(f"The ranking should name A, B and C once each, fastest first; it has {names}.")
    return names


@checker("Which initialisation trains fastest?")
def check_ranking(ranking: Any, results: dict[str, Any] | None = None) -> Feedback:
    """Compare ``ranking`` (the three names, fastest first) with the losses after the race.
    ``results`` ({name: final losses}) defaults to ``race()``."""
    names = _as_ranking(ranking)
    results = race() if results is None else results
    losses = {k: float(np.mean(results[k])) for k in NAMES}
    truth = sorted(NAMES, key=losses.get)
    feedback = Feedback("Which initialisation trains fastest?")
    feedback.table(["candidate", "mean loss after the race", "your place", "its place"],
                   [[k, f"{losses[k]:.3f}", names.index(k) + 1, truth.index(k) + 1] for k in NAMES])
    if names == truth:
        return feedback.correct(f"Right: {' then '.join(truth)}. The flattest end-to-end spectrum trained "
                                "fastest, whatever the size of its gradients.")
    if names[0] == truth[0]:
        feedback.correct(f"You picked the fastest one, {truth[0]}.")
        return feedback.wrong(f"But {truth[1]} beat {truth[2]}.").hint(
            "Between the other two, which has more singular values crushed towards zero?")
    return feedback.wrong(f"The fastest was {truth[0]}, not {names[0]}.").hint(
        "Compare how evenly the singular values are spread (the effective rank), not how large "
        "the gradients are.")
