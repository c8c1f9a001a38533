"""nbgrader glue: one preprocessor a file, configured in ``autograder/nbgrader_config.py``."""
