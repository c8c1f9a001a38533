"""The instructor notebook's entry point: ``from autograder.checks import assert_component``.

The hidden-test cells of the source notebook import it from here; the judging lives in ``judge.checks``.
"""

from .judge.checks import assert_component

__all__ = ["assert_component"]
