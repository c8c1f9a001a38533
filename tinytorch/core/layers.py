"""Just enough of modules 03-04 (layers, losses) for module 07's training example."""

from __future__ import annotations

import numpy as np

from .tensor import Tensor


class Linear:
    """y = x @ W + b, with Xavier-style initial weights from a seeded generator."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator):
        scale = np.sqrt(2.0 / (in_features + out_features))
        self.weight = Tensor(rng.normal(0.0, scale, (in_features, out_features)).astype(np.float32), requires_grad=True)
        self.bias = Tensor(np.zeros(out_features, dtype=np.float32), requires_grad=True)

    def __call__(self, x: Tensor) -> Tensor:
        return x @ self.weight + self.bias

    def parameters(self) -> list:
        return [self.weight, self.bias]


class MLP:
    """A two-layer tanh network: the smallest model worth training."""

    def __init__(self, sizes: tuple, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.layers = [Linear(a, b, rng) for a, b in zip(sizes[:-1], sizes[1:])]

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x).tanh()
        return self.layers[-1](x)

    def parameters(self) -> list:
        return [p for layer in self.layers for p in layer.parameters()]


def mse_loss(prediction: Tensor, target) -> Tensor:
    diff = prediction - target
    return (diff * diff).mean()
