"""Checkers for the exercises of chapter 3, "Degeneracy, not vanishing gradients".

1. :func:`check_ranking`: read three initialisations' singular values and predict which trains
   fastest. ``candidates()`` gives three initialisations of a 30-layer linear network of width
   64, named "A", "B" and "C" (what they are is the point of the exercise: the reader sees only
   numbers); the checker trains them exactly as the chapter trains its networks.
2. :func:`check_folding`: what folding a matrix changes in the forward and the backward pass.
3. :func:`check_fold_twice`: predict where a network folded twice lands, then train it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from .. import linear
from .. import degeneracy
from . import Feedback, Problem, as_function, as_number, as_word, call, checker, describe, sample

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


@functools.lru_cache(maxsize=2)
def _races(runs: int = 3, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Both exercises' races in one stack (the same batches, so each network trains exactly as it
    would alone): the candidates of exercise 1 and Fold 0, 1 and 2 of exercise 3, ``runs`` of
    each, trained for ``steps`` steps of the chapter's SGD (learning rate 0.01, batches of 64,
    the chapter's target map); each one's final loss (NaN where a run diverged). Cached."""
    nets = {**{f"candidate {k}": v for k, v in candidates(runs).items()},
            "Fold 0": linear.gaussian(runs, DEPTH, WIDTH, seed=0),
            "Fold 1": linear.fold(linear.gaussian(runs, DEPTH, WIDTH, seed=0)),
            "Fold 2": linear.fold(linear.gaussian(runs, DEPTH, WIDTH, seed=0), 2)}
    target = linear.target_map(WIDTH, seed=1000)
    history = linear.train(torch.cat(list(nets.values())), target, steps=steps, lr=LR, record_every=steps,
                           seed=0, workers=2, progress=False)
    return {name: h.loss[:, -1] for name, h in history.split({k: runs for k in nets}).items()}


@functools.lru_cache(maxsize=4)
def _race(runs: int = 3, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Every candidate's final loss after the race of exercise 1, one per run (see ``_races``)."""
    races = _races(runs, steps)
    return {name: races[f"candidate {name}"] for name in NAMES}


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


@checker("Exercise 1: which one trains fastest?")
def check_ranking(ranking: Any, results: dict[str, Any] | None = None) -> Feedback:
    """Compare ``ranking`` (the three names, fastest first) with the losses after the race.
    ``results`` ({name: final losses}) defaults to the checker's own race."""
    names = _as_ranking(ranking)
    results = _race() if results is None else results
    losses = {k: float(np.mean(results[k])) for k in NAMES}
    truth = sorted(NAMES, key=losses.get)
    feedback = Feedback("Exercise 1: which one trains fastest?")
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


# --- exercise 2: what folding changes ----------------------------------------------------------------
FOLD_VECTORS = ((1.0, 0.0, 0.0, 0.0), (1.0, 0.0, -1.0, 0.0), (1.0, 2.0, 3.0, 4.0),
                (0.5, -1.0, 0.5, -1.0, 2.0, 0.0, 1.0, 3.0))


def _draw_vectors(rng: np.random.Generator) -> list[tuple[float, ...]]:
    return [tuple(rng.standard_normal(int(rng.choice([2, 4, 8, 16, 64]))).round(6)) for _ in range(6)]


def _folded_gain(x: np.ndarray) -> float:
    """E||[B, B] x||^2 / ||x||^2 for B with N(0, 1/n) entries: ||x_1 + x_2||^2 / ||x||^2."""
    half = len(x) // 2
    return float(np.sum((x[:half] + x[half:]) ** 2) / np.sum(x ** 2))


@checker("Exercise 2: what folding changes")
def check_folding(forward_gain: Any, backward_gain: Any, average_gain: Any) -> Feedback:
    """``forward_gain(x)``: E||W x||^2 / ||x||^2 for a folded matrix W = [B, B], tried on vectors
    of even length (drawn afresh when grading); ``backward_gain``: E||W^T g||^2 / ||g||^2 for it;
    ``average_gain``: the forward gain averaged over random directions x."""
    function = as_function(forward_gain, "forward_gain")
    feedback = Feedback("Exercise 2: what folding changes")
    rows, wrong = [], []
    for x in sample(FOLD_VECTORS, _draw_vectors, "degeneracy.fold"):
        x = np.array(x, dtype=float)
        got = as_number(call(function, x.copy(), name="forward_gain"), "forward_gain(x)")
        want = _folded_gain(x)
        ok = abs(got - want) <= 1e-6 * max(1.0, want)
        rows.append([np.array2string(x[:4], precision=2) + (" ..." if len(x) > 4 else ""), len(x),
                     f"{got:.6f}", f"{want:.6f}", "✔" if ok else "✘"])
        if not ok:
            wrong.append((x, got, want))
    feedback.table(["x", "length", "yours", "E||Wx||²/||x||²", ""], rows)
    if not wrong:
        feedback.correct(f"forward_gain is exact on all {len(rows)} vectors.")
    else:
        x, got, want = wrong[0]
        feedback.wrong(f"forward_gain is {got:.4g} on a vector where the folded layer's gain is {want:.4g}.")
        feedback.hint("[B, B] x = B (x_1 + x_2), with x_1 and x_2 the two halves of x, and "
                      "E||B u||^2 = ||u||^2 for B with N(0, 1/n) entries."
                      if all(abs(g - 1) < 1e-9 for _, g, _ in wrong)
                      else "Split x into its two halves x_1, x_2: what does [B, B] do to x?")
    for name, answer in (("backward_gain", backward_gain), ("average_gain", average_gain)):
        value = as_number(answer, name)
        if abs(value - 1) <= 1e-6:
            feedback.correct(f"{name} = 1." + (" The backward pass sees no difference: E[W W^T] = I,"
                                               " folded or not."
                                               if name == "backward_gain" else
                                               " On average over directions a folded layer amplifies"
                                               " exactly as much as a Gaussian one."))
        else:
            feedback.wrong(f"{name} is not {value:g}.").hint(
                "E[W W^T] = I for both matrices." if name == "backward_gain" else
                "Average ||x_1 + x_2||^2 / ||x||^2 over random directions: E[x_1 . x_2] = 0.")
    return feedback


# --- exercise 3: fold twice -----------------------------------------------------------------------------
PLACES = ("faster", "between", "slower")


@functools.lru_cache(maxsize=2)
def _fold_race(runs: int = 3, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Fold 0, Fold 1 and Fold 2 (``runs`` each, seed 0), trained like the chapter's networks:
    each one's final loss (NaN where a run diverged). See ``_races``."""
    races = _races(runs, steps)
    return {name: races[name] for name in ("Fold 0", "Fold 1", "Fold 2")}


def _fold2_rank(runs: int = 3) -> float:
    """The mean effective rank of the end-to-end maps of the exercise's three folded-twice networks."""
    twice = linear.fold(linear.gaussian(runs, DEPTH, WIDTH, seed=0), 2)
    s = torch.linalg.svdvals(linear.end_to_end(twice.double())).cpu().numpy()
    return float(degeneracy.spectrum_effective_rank(s).mean())


@checker("Exercise 3: fold twice")
def check_fold_twice(effective_rank: Any, prediction: Any) -> Feedback:
    """``effective_rank``: the mean effective rank of the end-to-end maps of the three networks
    folded twice, at initialisation; ``prediction``: where they stand after 600 steps, "faster"
    (than Fold 0), "between" (Fold 0 and Fold 1) or "slower" (than Fold 1)."""
    rank = as_number(effective_rank, "effective_rank", positive=True)
    place = as_word(prediction, "prediction", PLACES)
    feedback = Feedback("Exercise 3: fold twice")
    want = _fold2_rank()
    if abs(rank - want) <= 0.01 * want:
        feedback.correct(f"The effective rank of the folded-twice maps is {want:.2f} "
                         "(the mean of the three networks).")
    else:
        feedback.wrong(f"The mean effective rank of the three maps is not {rank:.3g}.").hint(
            "torch.linalg.svdvals(linear.end_to_end(twice.double())) gives each network's singular values; "
            "degeneracy.spectrum_effective_rank turns them into effective ranks; take their mean.")
    losses = _fold_race()
    means = {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.inf for k, v in losses.items()}
    diverged = int((~np.isfinite(losses["Fold 2"])).sum())
    truth = ("faster" if means["Fold 2"] < means["Fold 0"]
             else "between" if means["Fold 2"] <= means["Fold 1"] else "slower")
    feedback.table(["network", "loss after 600 steps (mean of the runs that did not diverge)", "diverged"],
                   [[k, f"{means[k]:.3f}", f"{int((~np.isfinite(v)).sum())} of {len(v)}"]
                    for k, v in losses.items()])
    if place == truth:
        feedback.correct(f"Right: folded twice, the network ends "
                         f"{'slower than Fold 1' if truth == 'slower' else truth}"
                         + (f" ({diverged} of its 3 runs diverged)." if diverged else "."))
    else:
        feedback.wrong(f'Not "{place}": the race puts the folded-twice network {truth}.').hint(
            "Which of the three end-to-end maps is the most degenerate at initialisation?")
    return feedback
