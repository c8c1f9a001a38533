"""The trusted side of grading: a course module's content, the sandboxed probes per component, their
results read as hostile data, and the judging against the reference data (see ARCHITECTURE.md)."""
