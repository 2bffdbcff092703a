"""coursekit: build, check and grade the ResNet & U-Net medical-imaging notebook course.

The heavy lifting is nbgrader's (compile, autograde, feedback, export) and nbval's (execute);
this package configures and extends them, and holds the few helpers the Makefile drives.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
