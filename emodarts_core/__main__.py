"""``python -m emodarts_core``: see :mod:`emodarts_core.cli`."""
import sys

from .cli import main

sys.exit(main())
