"""tinytorch.core.optimizers: yours to write, not exported yet.

This file is what you start from. Work through modules/07_optimizers/optimizers.ipynb; its last
cell ("Export your work") replaces this whole file with your classes, as does

    python -m tinytorch.export modules/07_optimizers/optimizers.ipynb

run from the repository root. Until then every name below raises NotExportedError.
"""
# Written by `make generate` from the student notebook's export cells.


class NotExportedError(RuntimeError):
    """tinytorch.core.optimizers still holds the placeholders: the notebook's export cell has not run."""


def _not_exported(name):
    raise NotExportedError(
        f"tinytorch.core.optimizers.{name} is not exported yet: the export cell of "
        "modules/07_optimizers/optimizers.ipynb has not run. Finish the exercises, then run the notebook's last "
        "cell (\"Export your work\") or, from the repository root, "
        "`python -m tinytorch.export modules/07_optimizers/optimizers.ipynb`; then restart your kernel.")


class Optimizer:
    """Placeholder until you export your notebook."""

    def __init__(self, *args, **kwargs):
        _not_exported("Optimizer")


class SGD:
    """Placeholder until you export your notebook."""

    def __init__(self, *args, **kwargs):
        _not_exported("SGD")


class Adam:
    """Placeholder until you export your notebook."""

    def __init__(self, *args, **kwargs):
        _not_exported("Adam")


class AdamW:
    """Placeholder until you export your notebook."""

    def __init__(self, *args, **kwargs):
        _not_exported("AdamW")


def gradient_array(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("gradient_array")


def check_hyperparameters(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("check_hyperparameters")


def blockwise(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("blockwise")


def reachable_arrays(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("reachable_arrays")


def state_bytes(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("state_bytes")


def parameter_bytes(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("parameter_bytes")


def naive_adam_step(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("naive_adam_step")


def step_peak_bytes(*args, **kwargs):
    """Placeholder until you export your notebook."""
    _not_exported("step_peak_bytes")
