"""A variant corpus for the diagnosis: correct code and every catalogued bug, in styles students write.

Written from scratch (not edits of the reference solution), in two ordinary
styles per class: ``a`` is the textbook loop (out-of-place arithmetic, state in
lists, the hooks Adam offers), ``b`` keeps helpers in a cell the student added,
works in place with ``out=`` and handles Tensor/ndarray gradients itself. AdamW
has a third style, ``own``, that overrides ``step()``. A bug is a flag that
swaps one line of a template, so each bug appears in each style that can hold it.
Notebook habits around style ``a``: ``magic`` (IPython magics, shell and help lines
in exercise and added cells), ``edited-given`` (an import added to the given import
cell), ``added-import`` and ``stray-grade-id`` (an exercise's grade id on a cell
nbgrader does not grade). ``fault_entries`` put a hang, an ``os._exit`` or a memory blow-up in
one method of each component; ``helper_file_entries`` import a helper module the notebook wrote
with ``%%writefile``/``%%file``. Both run only sandboxed (``sandboxed_only``).

``entries()`` lists ``Entry(name, cells, added, bugs, inherited)``: ``cells``
{grade id: code}, ``added`` code cells placed before the Optimizer cell,
``bugs`` {component: slugs that cost that component points} and ``inherited``
the Adam slugs AdamW's table must mark as inherited, ``given`` {given cell id: lines
appended to it} and ``after`` {grade id: [(code, nbgrader metadata)] inserted after it}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPTIMIZER_A = '''
class Optimizer:
    def __init__(self, params):
        self.params = list(params)
        if len(self.params) == 0:
            raise ValueError("no parameters to optimize")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("params lists the same parameter twice")
        self.step_count = 0

    def zero_grad(self):
        for p in self.params:
            {ZERO}

    def step(self):
        raise NotImplementedError("subclasses implement step()")
'''
ZERO_OK, ZERO_BUG = "p.grad = None", "p.grad = np.zeros_like(p.data)"

OPTIMIZER_B = '''
class Optimizer:
    def __init__(self, params):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("empty parameter list")
        for i, p in enumerate(self.params):
            if any(p is q for q in self.params[:i]):
                raise ValueError(f"params[{i}] repeats an earlier parameter")
        self.step_count = 0

    def zero_grad(self):
        clear_gradients(self.params)

    def step(self):
        raise NotImplementedError
'''
HELPERS_B = '''
import numpy as np
from tinytorch.core.tensor import Tensor


def clear_gradients(params):
    for p in params:
        {ZERO_B}


def as_array(grad):
    """A gradient as an ndarray, whether it is a Tensor or an ndarray."""
    return np.asarray(grad.data if isinstance(grad, Tensor) else grad)


def validate(lr=0.0, momentum=0.0, weight_decay=0.0, betas=(0.0, 0.0), eps=0.0):
    if len(betas) != 2:
        raise ValueError(f"betas must be two numbers: {betas}")
    for name, value in (("lr", lr), ("weight_decay", weight_decay), ("eps", eps)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"bad {name}: {value}")
    for name, value in (("momentum", momentum), ("beta1", betas[0]), ("beta2", betas[1])):
        if not np.isfinite(value) or not 0 <= value < 1:
            raise ValueError(f"bad {name}: {value}")

print("helpers ready")
'''
ZERO_B_OK, ZERO_B_BUG = "p.grad = None", "p.grad = None if p.grad is None else p.grad * 0"

SGD_A = '''
class SGD(Optimizer):
    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        {CHECK}
        self.lr = lr
        {LR_CACHE}
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.momentum_buffers = [None for _ in self.params]

    def has_momentum(self):
        return self.momentum > 0

    def step(self):
        for i, p in enumerate(self.params):
            {NONE}
            g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad, dtype=p.data.dtype)
            {DECAY}
            if self.momentum > 0:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = {ZEROS}
                self.momentum_buffers[i] = self.momentum * self.momentum_buffers[i] + {VEL}
                {DIR}
            {AFTER}
            {UPDATE}
        self.step_count += 1

    def get_momentum_state(self):
        if not self.has_momentum():
            return None
        return {GET}

    def set_momentum_state(self, state):
        if state is None:
            self.momentum_buffers = [None] * len(self.params)
            return
        if len(state) != len(self.params):
            raise ValueError("state does not match the parameters")
        for v, p in zip(state, self.params):
            if v is not None and np.shape(v) != p.data.shape:
                raise ValueError("state shape does not match")
        self.momentum_buffers = [None if v is None else {SET} for v in state]
'''
NAN_TRAP_SGD = (
    "if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1:\n"
    "            raise ValueError('lr, momentum or weight_decay out of range')"
)
SGD_A_OK = {
    "CHECK": "check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay)",
    "UPDATE": "p.data -= {LR} * g",
    "LR_CACHE": "pass",
    "NONE": "if p.grad is None:\n                continue",
    "DECAY": "g = g + self.weight_decay * p.data",
    "ZEROS": "np.zeros_like(p.data)",
    "VEL": "g",
    "DIR": "g = self.momentum_buffers[i]",
    "AFTER": "pass",
    "LR": "self.lr",
    "GET": "[None if v is None else v.copy() for v in self.momentum_buffers]",
    "SET": "np.array(v, dtype=np.float32)",
}
SGD_A_BUGS = {
    "momentum-dampening": {"VEL": "(1 - self.momentum) * g"},
    "nesterov": {"DIR": "g = g + self.momentum * self.momentum_buffers[i]"},
    "weight-decay-ignored": {"DECAY": "pass"},
    "weight-decay-after-momentum": {"DECAY": "pass", "AFTER": "g = g + self.weight_decay * p.data"},
    "gradient-mutated": {"DECAY": "g += self.weight_decay * p.data"},
    "none-grad-not-skipped": {"NONE": "if p.grad is None:\n                p.grad = np.zeros_like(p.data)"},
    "state-aliasing": {"SET": "np.asarray(v)"},  # keeps the caller's arrays
    "lr-cached": {"LR_CACHE": "self.base_lr = lr", "LR": "self.base_lr"},
    "state-dtype": {"ZEROS": "np.zeros(p.data.shape)"},
    "nan-accepted": {"CHECK": NAN_TRAP_SGD},
}
# The textbook out-of-place update: a float64 gradient or an np.float64 lr makes the parameter float64.
DTYPE_PROMOTED_A = {"UPDATE": "p.data = p.data - {LR} * g"}

SGD_B = '''
class SGD(Optimizer):
    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        {CHECK}
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        {LR_CACHE}
        self.hyper = {"momentum": momentum, "weight_decay": weight_decay}
        self.momentum_buffers = [None] * len(self.params)

    def has_momentum(self):
        return bool(self.momentum)

    def step(self):
        for i, p in enumerate(self.params):
            {NONE}
            g = as_array(p.grad)
            {DECAY}
            if self.momentum:
                v = self.momentum_buffers[i]
                if v is None:
                    v = self.momentum_buffers[i] = {ZEROS}
                v *= self.momentum
                {VEL}
                {DIR}
            {AFTER}
            {UPDATE}
        self.step_count += 1

    def get_momentum_state(self):
        if not self.has_momentum():
            return None
        return {GET}

    def set_momentum_state(self, state):
        if state is None:
            self.momentum_buffers = [None] * len(self.params)
            return
        if len(state) != len(self.params) or any(
                v is not None and np.shape(v) != p.data.shape for v, p in zip(state, self.params)):
            raise ValueError("momentum state does not fit these parameters")
        self.momentum_buffers = [v if v is None else {SET} for v, p in zip(state, self.params)]
'''
SGD_B_OK = {
    "CHECK": "validate(lr=lr, momentum=momentum, weight_decay=weight_decay)",
    "LR_CACHE": "pass",
    "NONE": "if p.grad is None:\n                continue",
    "DECAY": "if self.weight_decay:\n                g = g + self.weight_decay * p.data",
    "ZEROS": "np.zeros(p.data.shape, dtype=p.data.dtype)",
    "VEL": "v += g",
    "DIR": "g = v",
    "AFTER": "pass",
    "UPDATE": "np.subtract(p.data, self.lr * g, out=p.data)",
    "SET": "np.asarray(v, dtype=p.data.dtype).copy()",
    "GET": "[v if v is None else np.copy(v) for v in self.momentum_buffers]",
}
SGD_B_BUGS = {
    "momentum-dampening": {"VEL": "v += (1 - self.momentum) * g"},
    "nesterov": {"DIR": "g = g + self.momentum * v"},
    "weight-decay-ignored": {"DECAY": "pass"},
    "weight-decay-after-momentum": {
        "DECAY": "pass",
        "AFTER": "if self.weight_decay:\n                g = g + self.weight_decay * p.data",
    },
    "gradient-mutated": {"DECAY": "if self.weight_decay:\n                g += self.weight_decay * p.data"},
    "none-grad-not-skipped": {"NONE": "pass"},  # crashes on None
    "state-aliasing": {"GET": "list(self.momentum_buffers)"},  # hands out the live, in-place-updated arrays
    "lr-cached": {"LR_CACHE": "self.step_size = lr", "UPDATE": "np.subtract(p.data, self.step_size * g, out=p.data)"},
    # float64 velocity, and the out-of-place update then turns the float32 parameter into float64
    "state-dtype": {"ZEROS": "np.zeros(p.data.shape)", "UPDATE": "p.data = p.data - self.lr * g"},
    "nan-accepted": {"CHECK": NAN_TRAP_SGD},
}

ADAM_A = '''
class Adam(Optimizer):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        {CHECK}
        self.lr = lr
        {LR_CACHE}
        {BETAS}
        self.eps = eps
        self.weight_decay = weight_decay
        self.m_buffers = [None] * len(self.params)
        self.v_buffers = [None] * len(self.params)

    def adjusted_gradient(self, grad, weights):
        {ADJ}

    def apply_update(self, weights, update):
        weights -= {LR} * update
        {APPLY}

    def step(self):
        {COUNT}
        for i, p in enumerate(self.params):
            {NONE}
            {COUNT_P}
            g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad, dtype=p.data.dtype)
            g = self.adjusted_gradient(g, p.data)
            if self.m_buffers[i] is None:
                self.m_buffers[i] = {ZEROS}
                self.v_buffers[i] = {ZEROS}
            self.m_buffers[i] = self.beta1 * self.m_buffers[i] + {M_NEW}
            self.v_buffers[i] = self.beta2 * self.v_buffers[i] + {V_NEW}
            t = {T}
            m_hat = self.m_buffers[i] / {C1}
            v_hat = self.v_buffers[i] / {C2}
            self.apply_update(p.data, {U})
'''
NAN_TRAP_ADAM = (
    "if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):\n"
    "            raise ValueError('lr, betas, eps or weight_decay out of range')"
)
ADAM_A_OK = {
    "CHECK": "check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)",
    "LR_CACHE": "pass",
    "BETAS": "self.beta1, self.beta2 = betas",
    "ADJ": "if self.weight_decay:\n            return grad + self.weight_decay * weights\n        return grad",
    "LR": "self.lr",
    "APPLY": "pass",
    "COUNT": "self.step_count += 1",
    "COUNT_P": "pass",
    "NONE": "if p.grad is None:\n                continue",
    "ZEROS": "np.zeros_like(p.data)",
    "M_NEW": "(1 - self.beta1) * g",
    "V_NEW": "(1 - self.beta2) * g * g",
    "T": "self.step_count",
    "C1": "(1 - self.beta1 ** t)",
    "C2": "(1 - self.beta2 ** t)",
    "U": "m_hat / (np.sqrt(v_hat) + self.eps)",
}
ADAM_A_BUGS = {
    "no-bias-correction": {"C1": "1", "C2": "1"},
    "step-count-off-by-one": {"T": "self.step_count + 1"},
    "step-count-per-param": {"COUNT": "pass", "COUNT_P": "self.step_count += 1"},
    "eps-inside-sqrt": {"U": "m_hat / np.sqrt(v_hat + self.eps)"},
    "missing-one-minus-beta": {"M_NEW": "g"},
    "betas-swapped": {"BETAS": "self.beta2, self.beta1 = betas"},
    "decoupled-decay-in-adam": {"ADJ": "return grad", "APPLY": "weights *= 1 - self.lr * self.weight_decay"},
    "weight-decay-ignored": {"ADJ": "return grad"},
    "gradient-mutated": {
        "ADJ": "if self.weight_decay:\n            grad += self.weight_decay * weights\n        return grad"
    },
    "none-grad-not-skipped": {"NONE": "if p.grad is None:\n                p.grad = np.zeros_like(p.data)"},
    "lr-cached": {"LR_CACHE": "self.initial_lr = lr", "LR": "self.initial_lr"},
    "state-dtype": {"ZEROS": "np.zeros(p.data.shape, dtype=np.float64)"},
    "nan-accepted": {"CHECK": NAN_TRAP_ADAM},
}

ADAM_B = '''
class Adam(Optimizer):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        {CHECK}
        self.lr, self.eps, self.weight_decay = lr, eps, weight_decay
        {LR_CACHE}
        {BETAS}
        self.defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.m_buffers = [None for _ in self.params]
        self.v_buffers = [None for _ in self.params]

    def adjusted_gradient(self, grad, weights):
        {ADJ}

    def apply_update(self, weights, update):
        {APPLY}

    def step(self):
        {COUNT}
        t = {T}
        for i, p in enumerate(self.params):
            {NONE}
            g = self.adjusted_gradient(as_array(p.grad), p.data)
            if self.m_buffers[i] is None:
                self.m_buffers[i], self.v_buffers[i] = {ZEROS}
            m, v = self.m_buffers[i], self.v_buffers[i]
            m *= self.beta1
            m += {M_NEW}
            v *= self.beta2
            v += {V_NEW}
            self.apply_update(p.data, adam_direction(m, v, t, self.beta1, self.beta2, self.eps))
'''
ADAM_HELPER_B = '''
def adam_direction(m, v, t, beta1, beta2, eps):
    m_hat = m / {C1}
    v_hat = v / {C2}
    return {U}
'''
ADAM_B_OK = {
    "CHECK": "validate(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)",
    "LR_CACHE": "pass",
    "BETAS": "self.beta1, self.beta2 = float(betas[0]), float(betas[1])",
    "ADJ": "return grad + self.weight_decay * weights if self.weight_decay else grad",
    "APPLY": "np.subtract(weights, self.lr * update, out=weights)",
    "COUNT": "self.step_count += 1",
    "T": "self.step_count",
    "NONE": "if p.grad is None:\n                continue",
    "ZEROS": "np.zeros_like(p.data), np.zeros_like(p.data)",
    "M_NEW": "(1 - self.beta1) * g",
    "V_NEW": "(1 - self.beta2) * np.square(g)",
    "C1": "(1 - beta1 ** t)",
    "C2": "(1 - beta2 ** t)",
    "U": "m_hat / (np.sqrt(v_hat) + eps)",
}
ADAM_B_BUGS = {
    "no-bias-correction": {"C1": "1.0", "C2": "1.0"},
    "step-count-off-by-one": {"T": "self.step_count - 1"},
    "eps-inside-sqrt": {"U": "m_hat / np.sqrt(v_hat + eps)"},
    "missing-one-minus-beta": {"V_NEW": "np.square(g)"},
    "betas-swapped": {"BETAS": "self.beta2, self.beta1 = float(betas[0]), float(betas[1])"},
    "decoupled-decay-in-adam": {
        "ADJ": "return grad",
        "APPLY": "weights *= 1 - self.lr * self.weight_decay\n"
        "        np.subtract(weights, self.lr * update, out=weights)",
    },
    "weight-decay-ignored": {"ADJ": "return grad"},
    "gradient-mutated": {
        "ADJ": "if self.weight_decay:\n            np.add(grad, self.weight_decay * weights, out=grad)\n"
        "        return grad"
    },
    "none-grad-not-skipped": {"NONE": "pass"},  # crashes on None
    "lr-cached": {
        "LR_CACHE": "self._step_size = lr",
        "APPLY": "np.subtract(weights, self._step_size * update, out=weights)",
    },
    # float64 moments; the out-of-place update then turns the float32 parameters into float64
    "state-dtype": {"ZEROS": "np.zeros(p.data.shape), np.zeros(p.data.shape)"},
    "nan-accepted": {"CHECK": NAN_TRAP_ADAM},
}
# Style b's state-dtype bug also "matches dtypes" before the update, so the parameters become float64.
STATE_DTYPE_B_STEP = (
    "            self.apply_update(p.data, adam_direction(",
    "            p.data = p.data.astype(m.dtype)\n            self.apply_update(p.data, adam_direction(",
)

ADAMW_A = '''
class AdamW(Adam):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def adjusted_gradient(self, grad, weights):
        {ADJ}

    def apply_update(self, weights, update):
        weights -= self.lr * update
        {SHRINK}
'''
ADAMW_A_OK = {"ADJ": "return grad", "SHRINK": "weights *= 1 - self.lr * self.weight_decay"}
ADAMW_A_BUGS = {
    "coupled-decay": {"ADJ": "return grad + self.weight_decay * weights", "SHRINK": "pass"},
    "decay-missing-lr": {"SHRINK": "weights *= 1 - self.weight_decay"},
    "weight-decay-ignored": {"SHRINK": "pass"},
}
ADAMW_OWN = '''
class AdamW(Adam):
    """Adam with decoupled weight decay, PyTorch's ordering: decay first, then the adaptive step."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def step(self):
        {COUNT}
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            {COUNT_P}
            g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad, dtype=p.data.dtype)
            {COUPLED}
            if self.m_buffers[i] is None:
                self.m_buffers[i] = np.zeros_like(p.data)
                self.v_buffers[i] = np.zeros_like(p.data)
            self.m_buffers[i] = self.beta1 * self.m_buffers[i] + (1 - self.beta1) * g
            self.v_buffers[i] = self.beta2 * self.v_buffers[i] + (1 - self.beta2) * g ** 2
            m_hat = self.m_buffers[i] / (1 - self.beta1 ** self.step_count)
            v_hat = self.v_buffers[i] / (1 - self.beta2 ** self.step_count)
            {SHRINK}
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
'''
ADAMW_OWN_OK = {
    "COUNT": "self.step_count += 1",
    "COUNT_P": "pass",
    "COUPLED": "pass",
    "SHRINK": "p.data *= 1 - self.lr * self.weight_decay",
}
ADAMW_OWN_BUGS = {
    "coupled-decay": {"COUPLED": "g = g + self.weight_decay * p.data", "SHRINK": "pass"},
    "decay-missing-lr": {"SHRINK": "p.data *= 1 - self.weight_decay"},
    "weight-decay-ignored": {"SHRINK": "pass"},
    "step-count-per-param": {"COUNT": "pass", "COUNT_P": "self.step_count += 1"},
}


def fill(template: str, ok: dict, change: dict = None) -> str:
    text = template
    for key, value in {**ok, **(change or {})}.items():
        text = text.replace("{" + key + "}", value)
    return text.strip("\n") + "\n"


@dataclass
class Entry:
    name: str
    cells: dict  # grade id -> code
    added: list = field(default_factory=list)
    bugs: dict = field(default_factory=dict)  # component -> slugs that must cost it points
    inherited: tuple = ()  # Adam slugs AdamW's table marks as inherited
    given: dict = field(default_factory=dict)  # given cell id -> lines the student appended to it
    after: dict = field(default_factory=dict)  # grade id -> [(code, nbgrader metadata)] inserted after it
    scores: dict = field(default_factory=dict)  # component -> exact score, for faults no slug names
    sandboxed_only: bool = False  # hangs, exits, files: only a sandboxed probe runs it


def style_a(opt=None, sgd=None, adam=None, adamw=None, adamw_own=False, adamw_own_bug=None) -> tuple:
    cells = {
        "optimizer": fill(OPTIMIZER_A, {"ZERO": ZERO_OK}, {"ZERO": ZERO_BUG} if opt else None),
        "sgd": fill(SGD_A, SGD_A_OK, SGD_A_BUGS.get(sgd)),
        "adam": fill(ADAM_A, ADAM_A_OK, ADAM_A_BUGS.get(adam)),
        "adamw": (
            fill(ADAMW_OWN, ADAMW_OWN_OK, ADAMW_OWN_BUGS.get(adamw_own_bug))
            if adamw_own
            else fill(ADAMW_A, ADAMW_A_OK, ADAMW_A_BUGS.get(adamw))
        ),
    }
    return cells, []


def style_b(opt=None, sgd=None, adam=None, adamw=None, adamw_own=False, adamw_own_bug=None) -> tuple:
    adam_change = dict(ADAM_B_BUGS.get(adam, {}))
    helper = fill(ADAM_HELPER_B, ADAM_B_OK, adam_change)
    adam_code = fill(ADAM_B, ADAM_B_OK, adam_change)
    if adam == "state-dtype":
        adam_code = adam_code.replace(*STATE_DTYPE_B_STEP)
    cells = {
        "optimizer": fill(OPTIMIZER_B, {}),
        "sgd": fill(SGD_B, SGD_B_OK, SGD_B_BUGS.get(sgd)),
        "adam": adam_code,
        "adamw": (
            fill(ADAMW_OWN, ADAMW_OWN_OK, ADAMW_OWN_BUGS.get(adamw_own_bug))
            if adamw_own
            else fill(ADAMW_A, ADAMW_A_OK, ADAMW_A_BUGS.get(adamw))
        ),
    }
    added = [fill(HELPERS_B, {"ZERO_B": ZERO_B_BUG if opt else ZERO_B_OK}), helper]
    return cells, added


def magics(cells: dict) -> dict:
    """IPython syntax students leave in exercise cells: line magics, shell lines, help, a timed cell."""
    return {
        "optimizer": "%config InlineBackend.figure_format = 'retina'\n" + cells["optimizer"],
        "sgd": "%%time\n" + cells["sgd"],
        "adam": "!pip install --quiet numpy\nnp.zeros?\n" + cells["adam"],
        "adamw": "%matplotlib inline\n" + cells["adamw"] + "%time AdamW\n",
    }


MAGIC_ADDED = "%%capture captured\nimport math\nprint('setup')\n"
DEEPCOPY_GET = {"GET": "copy.deepcopy(self.momentum_buffers)"}
# An exercise cell's grade id on a cell that is not an nbgrader cell: nbgrader ignores it, so does the grader.
NOT_A_GRADE_CELL = ("class SGD:\n    pass\n", {"grade_id": "sgd"})


# Adam slugs whose code AdamW runs too (it inherits Adam's step()); the others live in methods AdamW overrides.
INHERITED_BY_ADAMW = {
    "no-bias-correction",
    "step-count-off-by-one",
    "step-count-per-param",
    "eps-inside-sqrt",
    "missing-one-minus-beta",
    "betas-swapped",
    "none-grad-not-skipped",
    "state-dtype",
    "nan-accepted",
}


def entries() -> list:
    out = []
    for style, make in (("a", style_a), ("b", style_b)):
        out.append(Entry(f"correct-{style}", *make()))
        out.append(Entry(f"correct-{style}-own-adamw", *make(adamw_own=True)))
        out.append(Entry(f"bug-{style}-zero-grad", *make(opt=True), bugs={"Optimizer": {"zero-grad"}}))
        for slug in SGD_A_BUGS if style == "a" else SGD_B_BUGS:
            out.append(Entry(f"bug-{style}-sgd-{slug}", *make(sgd=slug), bugs={"SGD": {slug}}))
        for slug in ADAM_A_BUGS if style == "a" else ADAM_B_BUGS:
            bugs = {"Adam": {slug}}
            inherited = ()
            # AdamW's table pays for Adam's bug where AdamW runs that code: step() always; lr in style a
            # only through apply_update, which AdamW overrides (so lr-cached stays in Adam's table).
            if slug in INHERITED_BY_ADAMW:
                bugs["AdamW"] = {slug}
                inherited = (slug,)
            out.append(Entry(f"bug-{style}-adam-{slug}", *make(adam=slug), bugs=bugs, inherited=inherited))
        for slug in ADAMW_A_BUGS:
            out.append(Entry(f"bug-{style}-adamw-{slug}", *make(adamw=slug), bugs={"AdamW": {slug}}))
        for slug in ADAMW_OWN_BUGS:
            out.append(
                Entry(
                    f"bug-{style}-own-adamw-{slug}", *make(adamw_own=True, adamw_own_bug=slug), bugs={"AdamW": {slug}}
                )
            )
    # two bugs in one component, in both styles
    for style, make in (("a", style_a), ("b", style_b)):
        cells, added = make(adam="eps-inside-sqrt")
        lr_cached = (ADAM_A_BUGS if style == "a" else ADAM_B_BUGS)["lr-cached"]
        both = fill(
            ADAM_A if style == "a" else ADAM_B,
            ADAM_A_OK if style == "a" else ADAM_B_OK,
            {**(ADAM_A_BUGS if style == "a" else ADAM_B_BUGS)["eps-inside-sqrt"], **lr_cached},
        )
        cells = dict(cells, adam=both)
        out.append(
            Entry(
                f"bug-{style}-adam-eps-inside-sqrt+lr-cached",
                cells,
                added,
                bugs={"Adam": {"eps-inside-sqrt", "lr-cached"}, "AdamW": {"eps-inside-sqrt"}},
                inherited=("eps-inside-sqrt",),
            )
        )
    # the textbook out-of-place update: right values, but an np.float64 lr turns the parameters float64
    cells, added = style_a()
    out.append(
        Entry(
            "bug-a-sgd-dtype-promoted",
            dict(cells, sgd=fill(SGD_A, SGD_A_OK, DTYPE_PROMOTED_A)),
            added,
            bugs={"SGD": {"state-dtype"}},
        )
    )
    # IPython syntax, imports added to a given cell, a stray grade id: correct code keeps every point
    cells, added = style_a()
    out.append(Entry("correct-magic", magics(cells), [MAGIC_ADDED]))
    cells, added = style_a(adam="eps-inside-sqrt")
    out.append(
        Entry(
            "bug-magic-adam-eps-inside-sqrt",
            magics(cells),
            [MAGIC_ADDED],
            bugs={"Adam": {"eps-inside-sqrt"}, "AdamW": {"eps-inside-sqrt"}},
            inherited=("eps-inside-sqrt",),
        )
    )
    cells, added = style_a()
    out.append(
        Entry(
            "correct-edited-given-imports",
            dict(cells, sgd=fill(SGD_A, SGD_A_OK, DEEPCOPY_GET)),
            given={GIVEN_IMPORTS: "import copy\n"},
        )
    )
    out.append(Entry("correct-added-import", dict(cells, sgd=fill(SGD_A, SGD_A_OK, DEEPCOPY_GET)), ["import copy\n"]))
    out.append(Entry("correct-stray-grade-id", cells, after={"sgd": [NOT_A_GRADE_CELL]}))
    from autograder.judge.checks import catalog

    return out + fault_entries({c.id: c.points for c in catalog()}) + helper_file_entries()


GIVEN_IMPORTS = "cell-02"  # the notebook's given import cell (``#| export`` imports)

# -- faults that kill or stop the probe process, and helpers the kernel made files of -------------

# A fault as the statement(s) that replace a method's first line, at indentation {i}: the probe
# process hangs, exits, or fills its address space (``np.empty`` reserves without touching memory).
FAULTS = {
    "hang": "while True:\n{i}    pass\n{i}",
    "exit": "import os\n{i}os._exit(3)\n{i}",
    "memory": "hog = []\n{i}while True:\n{i}    hog.append(np.empty(10**8))\n{i}",
}
# Where each component's fault goes in style a (AdamW in its own-step style): a method that one
# scored check calls, and what that check is worth. Adam and AdamW fault only on a None gradient.
FAULT_SITES = {
    "Optimizer": ("optimizer", "    def zero_grad(self):\n        ", 8, "optimizer-zero-grad"),
    "SGD": ("sgd", "    def get_momentum_state(self):\n        ", 8, "sgd-checkpoint"),
    "Adam": ("adam", "            if p.grad is None:\n                ", 16, "adam-none-grad-untouched"),
    "AdamW": ("adamw", "            if p.grad is None:\n                ", 16, "adamw-defaults-rules"),
}


def with_fault(cells: dict, component: str, fault: str) -> dict:
    """``cells`` with ``fault`` at the start of the component's faulty method (``FAULT_SITES``)."""
    gid, anchor, indent, _ = FAULT_SITES[component]
    assert anchor in cells[gid], (component, anchor)
    return dict(cells, **{gid: cells[gid].replace(anchor, anchor + FAULTS[fault].format(i=" " * indent), 1)})


def fault_entries(points: dict) -> list:
    """Each fault in each component: only the check calling the faulty method loses its points.

    ``points`` {check id: points}; the AdamW is self-contained, so an Adam fault costs AdamW nothing.
    """
    out = []
    full = {"Optimizer": 10.0, "SGD": 30.0, "Adam": 30.0, "AdamW": 30.0}
    for component, (_, _, _, check) in FAULT_SITES.items():
        for fault in FAULTS:
            cells, added = style_a(adamw_own=True)
            out.append(
                Entry(
                    f"fault-{fault}-{component.lower()}",
                    with_fault(cells, component, fault),
                    added,
                    scores=dict(full, **{component: full[component] - points[check]}),
                    sandboxed_only=True,
                )
            )
    cells, added = style_a()
    out.append(
        Entry(
            "fault-hang-adam-inherited",
            with_fault(cells, "Adam", "hang"),
            added,
            scores=dict(
                full,
                Adam=full["Adam"] - points["adam-none-grad-untouched"],
                AdamW=full["AdamW"] - points["adamw-defaults-rules"],
            ),
            sandboxed_only=True,
        )
    )
    return out


ADAM_MATH = "def bias_correction(beta, t):\n    return 1 - beta ** t\n"
ADAM_WITH_HELPER = {"C1": "bias_correction(self.beta1, t)", "C2": "bias_correction(self.beta2, t)"}


def helper_file_entries() -> list:
    """Correct code whose Adam imports a helper the notebook wrote: %%writefile, %%file -a, %run."""
    cells, _ = style_a()
    adam = "from adam_math import bias_correction\n" + fill(ADAM_A, ADAM_A_OK, ADAM_WITH_HELPER)
    run_adam = "%run adam_math.py\n" + fill(ADAM_A, ADAM_A_OK, ADAM_WITH_HELPER)
    first, second = ADAM_MATH.split("    return")
    return [
        Entry(
            "correct-writefile-helper",
            dict(cells, adam=adam),
            ["%%writefile adam_math.py\n" + ADAM_MATH],
            sandboxed_only=True,
        ),
        Entry(
            "correct-file-append-helper",
            dict(cells, adam=adam),
            ["%%file adam_math.py\n" + first, "%%file -a adam_math.py\n    return" + second],
            sandboxed_only=True,
        ),
        Entry(
            "correct-run-helper",
            dict(cells, adam=run_adam),
            ["%%writefile adam_math.py\n" + ADAM_MATH],
            sandboxed_only=True,
        ),
    ]


def notebook(entry: Entry, student_nb, source_nb):
    """The release notebook answered with ``entry``: its solution cells, its lines appended to
    given cells, its extra cells after exercise cells, and its added cells (fresh cell ids, as
    Jupyter gives them) placed before the Optimizer exercise."""
    import copy
    import uuid

    from nbformat.v4 import new_code_cell

    from autograder.arrival.notebook import grade_id

    nb = copy.deepcopy(student_nb)
    for cell in nb.cells:
        if grade_id(cell) in entry.cells and cell.metadata["nbgrader"].get("solution"):
            cell.source = entry.cells[grade_id(cell)]
    for cell in nb.cells:
        if cell.get("id") in entry.given:
            cell.source = cell.source.rstrip("\n") + "\n" + entry.given[cell.id]
    for gid, extra in entry.after.items():
        at = next(n for n, c in enumerate(nb.cells) if grade_id(c) == gid) + 1
        for code, meta in reversed(extra):
            cell = new_code_cell(code, metadata={"nbgrader": dict(meta)})
            cell.id = uuid.uuid4().hex[:12]
            nb.cells.insert(at, cell)
    at = next(n for n, c in enumerate(nb.cells) if grade_id(c) == "optimizer")
    for code in reversed(entry.added):
        cell = new_code_cell(code)
        cell.id = uuid.uuid4().hex[:12]
        nb.cells.insert(at, cell)
    return nb
