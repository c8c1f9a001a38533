"""A hardened nbgrader autograder; each course module brings its own content (``autograder.modules``)."""
