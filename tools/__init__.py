"""Maintainer tools: generate the package and notebooks from src/, and the grader's reference data."""
