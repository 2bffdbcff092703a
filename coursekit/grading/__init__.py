"""Grading a class: intake → repair → execute (nbgrader, the student's kernel) → verify (trusted
re-run of every graded test) → gradebook → report. See autograder/README.md and SECURITY.md."""
