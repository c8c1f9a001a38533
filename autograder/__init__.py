"""Autograding helpers for the 07 Optimizers module."""
