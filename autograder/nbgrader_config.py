"""nbgrader configuration: the repository root is an nbgrader course.

source/07_optimizers/   instructor notebook (generated from src/)
modules/07_optimizers/  student notebook: nbgrader's release directory
submitted/<student>/07_optimizers/, autograded/, feedback/: nbgrader's usual folders
"""
import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.course_id = "tinytorch-07"
c.CourseDirectory.release_directory = "modules"
c.CourseDirectory.db_assignments = [{"name": "07_optimizers"}]

# Students see the class line, signatures and docstrings; only method bodies become stubs.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.enforce_metadata = True
