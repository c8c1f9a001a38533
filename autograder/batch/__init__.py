"""Grading many notebooks: the course set-up, one notebook and many, the local pool, Dask, resumable course runs."""
