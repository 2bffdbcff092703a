"""Benchmarks of the grader (`make bench-grading`, `make bench-gradescope`): measured figures, no assertions."""
