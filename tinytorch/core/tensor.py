"""A small float32 Tensor with reverse-mode autograd.

It stands in for modules 01-06 (tensor, activations, layers, losses, data,
autograd) so that module 07 runs on its own. It supports exactly what the
optimizer module's integration example needs: matmul, broadcasting add and
multiply, subtraction, power, mean/sum, tanh and relu.
"""

from __future__ import annotations

import numpy as np

DEFAULT_DTYPE = np.float32


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back down to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """An n-dimensional float32 array that can remember how it was computed.

    ``data`` is a NumPy array, ``grad`` is None until ``backward()`` fills it,
    and ``requires_grad`` marks the leaves an optimizer will update.
    """

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data)
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        elif not np.issubdtype(array.dtype, np.floating):
            array = array.astype(DEFAULT_DTYPE)
        elif array.dtype == np.float64 and not isinstance(data, np.ndarray):
            array = array.astype(DEFAULT_DTYPE)  # Python floats and lists become float32
        self.data = array
        self.grad = None
        self.requires_grad = requires_grad
        self._parents: tuple = ()
        self._backward = None

    # -- construction helpers -------------------------------------------------
    def _child(self, data, parents, backward) -> Tensor:
        out = Tensor(data, dtype=data.dtype)
        if any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = parents
            out._backward = backward
        return out

    @staticmethod
    def _lift(other) -> Tensor:
        return other if isinstance(other, Tensor) else Tensor(other)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return float(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{flag})"

    # -- operations ------------------------------------------------------------
    def __add__(self, other) -> Tensor:
        other = self._lift(other)

        def backward(g):
            return _unbroadcast(g, self.shape), _unbroadcast(g, other.shape)

        return self._child(self.data + other.data, (self, other), backward)

    __radd__ = __add__

    def __mul__(self, other) -> Tensor:
        other = self._lift(other)

        def backward(g):
            return (_unbroadcast(g * other.data, self.shape), _unbroadcast(g * self.data, other.shape))

        return self._child(self.data * other.data, (self, other), backward)

    __rmul__ = __mul__

    def __neg__(self) -> Tensor:
        return self * -1.0

    def __sub__(self, other) -> Tensor:
        return self + (-self._lift(other))

    def __rsub__(self, other) -> Tensor:
        return self._lift(other) + (-self)

    def __pow__(self, exponent: float) -> Tensor:
        def backward(g):
            return (g * exponent * self.data ** (exponent - 1),)

        return self._child(self.data**exponent, (self,), backward)

    def __matmul__(self, other) -> Tensor:
        other = self._lift(other)

        def backward(g):
            return g @ other.data.T, self.data.T @ g

        return self._child(self.data @ other.data, (self, other), backward)

    def sum(self) -> Tensor:
        def backward(g):
            return (np.broadcast_to(g, self.shape).astype(self.dtype),)

        return self._child(np.asarray(self.data.sum(), dtype=self.dtype), (self,), backward)

    def mean(self) -> Tensor:
        return self.sum() * (1.0 / self.size)

    def tanh(self) -> Tensor:
        out = np.tanh(self.data)

        def backward(g):
            return (g * (1.0 - out * out),)

        return self._child(out, (self,), backward)

    def relu(self) -> Tensor:
        def backward(g):
            return (g * (self.data > 0),)

        return self._child(np.maximum(self.data, 0), (self,), backward)

    # -- autograd --------------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Fill ``.grad`` on every leaf that requires it (gradients accumulate)."""
        order, seen = [], set()

        def visit(node):
            if id(node) not in seen:
                seen.add(id(node))
                for parent in node._parents:
                    visit(parent)
                order.append(node)

        visit(self)
        seed = np.ones_like(self.data) if grad is None else np.asarray(grad, dtype=self.dtype)
        grads = {id(self): seed}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                if node.requires_grad:
                    g = g.astype(node.dtype, copy=False)
                    node.grad = g if node.grad is None else node.grad + g
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if parent.requires_grad:
                    grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else pg
