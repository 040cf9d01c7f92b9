"""The Gradescope autograder bundle: ``setup.sh`` and ``run_autograder`` around the same grader."""
