"""TinyTorch, module 07 (optimizers) with a stand-in for modules 01-06."""

__version__ = "0.7.0"
