"""The instructor's reference build of the module (``make generate`` writes it from src/).

Instructor-only: the book, the benchmarks and the tests import the reference optimizers
from ``content.m07_optimizers.solution.optimizers``. Students' ``tinytorch/core/optimizers.py`` is
what *their* notebook exports; it never holds this code.
"""
