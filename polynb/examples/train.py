"""Train a small neural network (NumPy only) and write TensorBoard scalars while it trains.

The task: tell the two arms of a noisy two-spiral dataset apart, a problem a linear model cannot solve, with
a two-layer perceptron trained by mini-batch SGD with momentum. Each epoch appends ``loss``, ``accuracy``
and ``learning_rate`` to ``$POLYAXON_RUN_OUTPUTS_PATH/tensorboard`` (what a TensorBoard op started on this
run's ``run_status_running`` shows live), and the final numbers become the run's outputs.

Training stops after ``--epochs`` or ``--max-seconds``, whichever comes first: a time budget keeps the demo's
length the same on a fast laptop and on a busy CI machine.

    python -m polynb.examples.train --lr 0.05 --epochs 2000 --max-seconds 15
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from polynb.examples.tbwriter import ScalarWriter

Array = NDArray[np.float64]


def spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, NDArray[np.int64]]:
    """``n`` points per arm of two interleaved spirals, with Gaussian noise; labels 0 and 1."""
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0.0, noise, (2 * n, 2))
    y = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    return x, y


class MLP:
    """2 -> hidden -> hidden -> 2, tanh activations, softmax cross-entropy, SGD with momentum."""

    def __init__(self, hidden: int, rng: np.random.Generator) -> None:
        sizes = [2, hidden, hidden, 2]
        self.weights = [rng.normal(0.0, np.sqrt(1.0 / a), (a, b)) for a, b in itertools.pairwise(sizes)]
        self.biases = [np.zeros(b) for b in sizes[1:]]
        self.velocity = [np.zeros_like(p) for p in [*self.weights, *self.biases]]

    def forward(self, x: Array) -> tuple[list[Array], Array]:
        activations = [x]
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            activations.append(np.tanh(activations[-1] @ w + b))
        logits = activations[-1] @ self.weights[-1] + self.biases[-1]
        return activations, logits

    def step(self, x: Array, y: NDArray[np.int64], lr: float, momentum: float = 0.9) -> float:
        activations, logits = self.forward(x)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
        grad = probs
        grad[np.arange(len(y)), y] -= 1.0
        grad /= len(y)
        grads_w: list[Array] = []
        grads_b: list[Array] = []
        for layer in reversed(range(len(self.weights))):
            grads_w.insert(0, activations[layer].T @ grad)
            grads_b.insert(0, grad.sum(axis=0))
            if layer:
                grad = (grad @ self.weights[layer].T) * (1.0 - activations[layer] ** 2)
        params = [*self.weights, *self.biases]
        for i, (param, g) in enumerate(zip(params, [*grads_w, *grads_b], strict=True)):
            self.velocity[i] = momentum * self.velocity[i] - lr * g
            param += self.velocity[i]
        return loss

    def accuracy(self, x: Array, y: NDArray[np.int64]) -> float:
        return float((self.forward(x)[1].argmax(axis=1) == y).mean())


def tensorboard_dir() -> Path:
    outputs = os.environ.get("POLYAXON_RUN_OUTPUTS_PATH")
    return Path(outputs) / "tensorboard" if outputs else Path("runs") / "train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=15.0, help="time budget (0: none)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x, y = spirals(1000, 0.08, rng)
    order = rng.permutation(len(y))
    train, test = order[: len(y) * 4 // 5], order[len(y) * 4 // 5 :]
    model = MLP(args.hidden, rng)
    logdir = tensorboard_dir()
    print(f"training a {args.hidden}x{args.hidden} MLP on {len(train)} points; TensorBoard logs in {logdir}")
    started = time.monotonic()
    loss = accuracy = 0.0
    epoch = 0
    with ScalarWriter(logdir) as writer:
        for epoch in range(1, args.epochs + 1):
            lr = args.lr * 0.5 * (1 + np.cos(np.pi * epoch / args.epochs))  # cosine decay
            batches = rng.permutation(train)
            losses = [
                model.step(x[idx], y[idx], lr)
                for idx in np.array_split(batches, max(1, len(batches) // args.batch_size))
            ]
            loss = float(np.mean(losses))
            accuracy = model.accuracy(x[test], y[test])
            for tag, value in (("loss", loss), ("accuracy", accuracy), ("learning_rate", lr)):
                writer.add_scalar(tag, value, epoch)
            writer.flush()
            if epoch % 50 == 0 or epoch == 1:
                print(f"epoch {epoch:5d}  loss {loss:.4f}  test accuracy {accuracy:.3f}", flush=True)
            if args.max_seconds and time.monotonic() - started >= args.max_seconds:
                print(f"time budget of {args.max_seconds:g} s reached after {epoch} epochs")
                break
    print(f"done: {epoch} epochs, loss {loss:.4f}, test accuracy {accuracy:.3f}")
    if os.environ.get("POLYAXON_RUN_OUTPUTS_PATH"):
        from polynb.tracking import log_outputs  # only inside a run

        log_outputs(loss=round(loss, 5), accuracy=round(accuracy, 4), epochs=epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
