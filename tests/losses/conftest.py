"""Make the naive reference implementations (loss_reference.py) importable from the loss tests."""

import pathlib
import sys

_HERE = str(pathlib.Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
