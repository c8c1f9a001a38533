# DO NOT EDIT: generated from src/07_optimizers/07_optimizers.py by `make generate`.
# Edit that file and regenerate; a test fails when this file drifts from it.

import math
import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence

import numpy as np

from tinytorch.core.tensor import Tensor


def gradient_array(param: Tensor) -> np.ndarray:
    """Return ``param.grad`` as a NumPy array, whether it is a Tensor or an ndarray.

    The array is the gradient itself, not a copy: read it, never write into it.
    """
    grad = param.grad
    return grad.data if isinstance(grad, Tensor) else np.asarray(grad)


def _finite_number(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}: a step of size inf/nan destroys the weights")
    return number


def check_hyperparameters(lr=None, momentum=None, betas=None, eps=None, weight_decay=None) -> None:
    """Raise ValueError naming the first invalid hyperparameter and why it is invalid.

    NaN and inf are rejected before any range check: ``nan < 0`` is False, so a
    range check alone would let NaN through.
    """
    if lr is not None and _finite_number("lr", lr) < 0:
        raise ValueError(f"lr must be >= 0, got {lr}: a negative learning rate climbs the loss")
    if momentum is not None and not 0 <= _finite_number("momentum", momentum) < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}: at 1 or above the velocity never decays")
    if betas is not None:
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for name, beta in zip(("betas[0]", "betas[1]"), betas):
            if not 0 <= _finite_number(name, beta) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta}: "
                                 "at 1 the moment never moves and bias correction divides by zero")
    if eps is not None and _finite_number("eps", eps) < 0:
        raise ValueError(f"eps must be >= 0, got {eps}: it guards a division and must not cancel the denominator")
    if weight_decay is not None and _finite_number("weight_decay", weight_decay) < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}: negative decay grows the weights")


# A block of every array one step touches (weights, gradient, two moments, a
# temporary) stays in a core's cache together, so each element comes from
# memory once per step instead of once per NumPy operation. 2**17 floats per
# array measured fastest on the course machine (2 MB of L2 per core).
BLOCK = 1 << 17
WORKERS = os.cpu_count() or 1
_pool = None


def blockwise(update, *arrays) -> None:
    """Call ``update(*blocks)`` on matching flat blocks of same-sized arrays, on ``WORKERS`` threads.

    NumPy releases the GIL inside its loops, so threads really share the work.
    Arrays that are not contiguous are updated whole, in one call.
    """
    global _pool
    size = arrays[0].size
    if size <= BLOCK or not all(a.flags.c_contiguous for a in arrays):
        update(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    starts = range(0, size, BLOCK)

    def run(part):
        for start in part:
            update(*(f[start:start + BLOCK] for f in flat))

    workers = min(WORKERS, len(starts) // 4)      # a few blocks each, or threading does not pay
    if workers <= 1:
        run(starts)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="optimizer")
    parts = [starts[k * len(starts) // workers:(k + 1) * len(starts) // workers] for k in range(workers)]
    list(_pool.map(run, parts))                   # list() re-raises a worker's exception here


class Optimizer:
    """Base class: owns a list of parameters and counts steps.

    Subclasses implement ``step()``; everything else is shared.
    """

    def __init__(self, params: Sequence[Tensor]):
        """Store ``params`` as a list in ``self.params`` and set ``self.step_count = 0``.

        Raise ValueError if ``params`` is empty: an optimizer with nothing to
        optimize is almost always a bug in how the model listed its parameters.
        Raise ValueError if the same parameter object appears twice: ``step()``
        would update it twice.
        """
        self.params = list(params)
        if not self.params:
            raise ValueError("Optimizer got an empty parameter list: pass model.parameters() "
                             "(a list of Tensors), not an empty list or an exhausted generator")
        seen = set()
        for i, param in enumerate(self.params):
            if id(param) in seen:           # identity, not equality: equal values are fine
                raise ValueError(f"params[{i}] is a parameter already in params: each parameter "
                                 "may appear once, or step() updates it twice")
            seen.add(id(param))
        self.step_count = 0

    def zero_grad(self) -> None:
        """Set ``grad`` to None on every parameter."""
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        """Update every parameter from its gradient. Subclasses must override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay.

    Memory: parameters + one velocity per parameter when momentum > 0 (2x),
    parameters only otherwise (1x).
    """

    def __init__(self, params: Sequence[Tensor], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        """Validate and store the hyperparameters; one velocity slot per parameter, all None."""
        super().__init__(params)
        check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.momentum_buffers: List[Optional[np.ndarray]] = [None] * len(self.params)

    def has_momentum(self) -> bool:
        """True when this optimizer keeps velocities (momentum > 0)."""
        return self.momentum > 0

    def step(self) -> None:
        """One SGD update of every parameter that has a gradient."""
        def update(weights, grad, velocity=None):
            if self.weight_decay != 0:
                grad = grad + self.weight_decay * weights    # a new array: param.grad stays intact
            if velocity is not None:
                velocity *= self.momentum                     # in place: no new array per step
                velocity += grad
                grad = velocity
            weights -= self.lr * grad

        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            if self.momentum != 0 and self.momentum_buffers[i] is None:
                self.momentum_buffers[i] = np.zeros_like(param.data)
            state = [] if self.momentum == 0 else [self.momentum_buffers[i]]
            blockwise(update, param.data, gradient_array(param), *state)
        self.step_count += 1

    def get_momentum_state(self) -> Optional[List[Optional[np.ndarray]]]:
        """Copies of the velocities (None where a parameter has none yet), or None without momentum."""
        if not self.has_momentum():
            return None
        return [None if v is None else v.copy() for v in self.momentum_buffers]

    def set_momentum_state(self, state: Optional[Sequence[Optional[np.ndarray]]]) -> None:
        """Load copies of ``state`` into the velocities; None clears them.

        Raise ValueError if ``state`` has the wrong length or a velocity has the wrong shape.
        """
        if state is None:
            self.momentum_buffers = [None] * len(self.params)
            return
        if len(state) != len(self.params):
            raise ValueError(f"momentum state has {len(state)} entries but the optimizer has "
                             f"{len(self.params)} parameters: was it saved from another model?")
        buffers = []
        for i, (v, param) in enumerate(zip(state, self.params)):
            if v is not None:
                v = np.asarray(v)
                if v.shape != param.data.shape:
                    raise ValueError(f"momentum state {i} has shape {v.shape} but parameter {i} "
                                     f"has shape {param.data.shape}")
                v = v.astype(param.data.dtype, copy=True)
            buffers.append(v)
        self.momentum_buffers = buffers


class Adam(Optimizer):
    """Adam: per-parameter steps scaled by running moments of the gradient.

    Memory: parameters + m + v, so 3x the parameters.
    """

    def __init__(self, params: Sequence[Tensor], lr: float = 0.001, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        """Validate and store hyperparameters (``self.beta1``, ``self.beta2``); None moment slots."""
        super().__init__(params)
        check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.m_buffers: List[Optional[np.ndarray]] = [None] * len(self.params)
        self.v_buffers: List[Optional[np.ndarray]] = [None] * len(self.params)

    def adjusted_gradient(self, grad: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The gradient the moments see. Adam adds L2 decay: ``grad + weight_decay * weights``.

        Return a new array (or ``grad`` itself when there is no decay); never write into ``grad``.
        """
        if self.weight_decay != 0:
            return grad + self.weight_decay * weights
        return grad

    def apply_update(self, weights: np.ndarray, update: np.ndarray) -> None:
        """Move ``weights`` in place by the adaptive update: ``weights -= lr * update``.

        ``update`` is scratch space owned by ``step()``; it may be overwritten.
        """
        update *= self.lr
        weights -= update

    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        self.step_count += 1
        correction1 = 1 - self.beta1 ** self.step_count
        correction2 = 1 - self.beta2 ** self.step_count

        def update(weights, grad, m, v):
            grad = self.adjusted_gradient(grad, weights)
            # One scratch block is the only allocation: m, v and the weights change in place.
            scratch = np.multiply(grad, 1 - self.beta1, dtype=weights.dtype)
            m *= self.beta1
            m += scratch                                   # m = b1*m + (1-b1)*g
            np.multiply(grad, grad, out=scratch)
            scratch *= 1 - self.beta2
            v *= self.beta2
            v += scratch                                   # v = b2*v + (1-b2)*g^2
            np.divide(v, correction2, out=scratch)
            np.sqrt(scratch, out=scratch)
            scratch += self.eps                            # sqrt(v_hat) + eps
            np.divide(m, scratch, out=scratch)
            scratch /= correction1                         # u = m_hat / (sqrt(v_hat) + eps)
            self.apply_update(weights, scratch)

        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            if self.m_buffers[i] is None:
                self.m_buffers[i] = np.zeros_like(param.data)
                self.v_buffers[i] = np.zeros_like(param.data)
            blockwise(update, param.data, gradient_array(param), self.m_buffers[i], self.v_buffers[i])


class AdamW(Adam):
    """Adam with decoupled weight decay: the weights shrink by ``1 - lr * weight_decay`` per step."""

    def __init__(self, params: Sequence[Tensor], lr: float = 0.001, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        """Same hyperparameters as Adam, with a default weight_decay of 0.01."""
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def adjusted_gradient(self, grad: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The raw gradient: decoupled decay never enters the moments."""
        return grad

    def apply_update(self, weights: np.ndarray, update: np.ndarray) -> None:
        """``weights = (weights - lr * update) * (1 - lr * weight_decay)``, in place."""
        update *= self.lr
        weights -= update
        if self.weight_decay != 0:
            weights *= 1 - self.lr * self.weight_decay


def reachable_arrays(root, skip_ids=frozenset()) -> list:
    """Every distinct ndarray reachable from ``root`` through attributes and containers."""
    found, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or id(obj) in skip_ids:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            found.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    return found


def state_bytes(optimizer) -> int:
    """Bytes of parameters plus optimizer state (gradients excluded), shared memory counted once."""
    grads = {id(p.grad) for p in optimizer.params if p.grad is not None}
    grads |= {id(p.grad.data) for p in optimizer.params if isinstance(p.grad, Tensor)}
    owners = {}
    for array in reachable_arrays(optimizer, skip_ids=frozenset(grads)):
        base = array if array.base is None else array.base
        owners[id(base)] = base.nbytes if isinstance(base, np.ndarray) else array.nbytes
    return sum(owners.values())


def parameter_bytes(params) -> int:
    return sum(p.data.nbytes for p in params)


def naive_adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                    lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """Adam written as plain expressions: correct, and allocates a new array per operation."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    param = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    return param, m, v


def step_peak_bytes(step) -> int:
    """Peak bytes NumPy allocates while ``step()`` runs (tracemalloc sees NumPy's allocator)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
