"""How fast nblib trains Nielsen's network, against a plain per-example loop of the same maths.

    python benchmarks/train_speed.py [--epochs 5] [--reference-examples 5000] [--no-table]

Prints what it measures, and on its last line
    epoch_s=<median s per epoch> table_s=<s> speedup=<ratio>
where epoch_s is one epoch of [784,30,30,30,30,10] with mini-batch 10 on the 50,000 training
images (one network, one core, float32, numba engine); table_s is the whole depth experiment of
chapter 1 (4 depths x 3 seeds x 30 epochs, validation accuracy after every epoch), run as the
chapter runs it, with nblib.training.run_parallel on every core; and speedup is the per-epoch
time of the per-example loop in tests/network2_reference.py divided by epoch_s (the loop is
timed on the first --reference-examples examples of an epoch and scaled up to 50,000).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from nblib import data, networks, training
from nblib.kernels import SparseRows, sgd_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import network2_reference  # noqa: E402  (the per-example loop the tests check nblib against)

DEEP = [784, 30, 30, 30, 30, 10]
DEPTHS = [[784, 30, 10], [784, 30, 30, 10], [784, 30, 30, 30, 10], DEEP]


def nblib_epoch_seconds(mnist: data.MNIST, epochs: int) -> list[float]:
    net = networks.Network(DEEP, seed=0)
    x, y = mnist.training.images, mnist.training.labels
    rows = SparseRows.from_dense(x, net.dtype)
    rng = np.random.default_rng(0)
    sgd_epoch(net.weights, net.biases, rows, y, rng.permutation(len(x)),
              10, 0.1, 5.0, len(x))  # compile/warm up
    times = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        start = time.perf_counter()
        sgd_epoch(net.weights, net.biases, rows, y, order, 10, 0.1, 5.0, len(x))
        times.append(time.perf_counter() - start)
    return times


def reference_epoch_seconds(mnist: data.MNIST, examples: int) -> float:
    net = networks.Network(DEEP, seed=0)
    x, y = mnist.training.images, mnist.training.labels
    order = np.random.default_rng(0).permutation(len(x))[:examples]
    start = time.perf_counter()
    network2_reference.sgd_epoch(net.weights, net.biases, x, y, order, 10, 0.1, 5.0)
    return (time.perf_counter() - start) * len(x) / examples


def table_seconds(mnist: data.MNIST) -> tuple[float, list[float]]:
    def job(spec):
        sizes, seed = spec
        net = networks.Network(sizes, seed=seed)
        return training.sgd(net, mnist.training, epochs=30, mini_batch_size=10, eta=0.1, lmbda=5.0,
                            evaluation=mnist.validation, seed=seed, progress=False).final_accuracy
    start = time.perf_counter()
    accuracies = training.run_parallel(job, [(s, seed) for s in DEPTHS for seed in (0, 1, 2)], progress=False)
    return time.perf_counter() - start, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed for epoch_s (after one warm-up)")
    parser.add_argument("--reference-examples", type=int, default=5000,
                        help="examples the per-example loop is timed on")
    parser.add_argument("--no-table", action="store_true", help="skip the depth experiment (table_s=nan)")
    args = parser.parse_args()

    mnist = data.load_mnist(verbose=False)
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}")
    times = nblib_epoch_seconds(mnist, args.epochs)
    epoch_s = statistics.median(times)
    print(f"nblib epoch of {DEEP}, mini-batch 10: " + ", ".join(f"{t:.3f}" for t in times)
          + f" s (median {epoch_s:.3f})")
    reference_s = reference_epoch_seconds(mnist, args.reference_examples)
    print(f"per-example loop: {reference_s:.2f} s per epoch (timed on {args.reference_examples} examples)")
    table_s = float("nan")
    if not args.no_table:
        table_s, accuracies = table_seconds(mnist)
        print(f"depth experiment (12 runs x 30 epochs on {os.cpu_count()} cores): {table_s:.1f} s; "
              f"final accuracies: {', '.join(f'{100 * a:.2f}' for a in accuracies)}")
    print(f"epoch_s={epoch_s:.3f} table_s={table_s:.1f} speedup={reference_s / epoch_s:.1f}")


if __name__ == "__main__":
    main()
