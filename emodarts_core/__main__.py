"""``python -m emodarts_core``: see :mod:`emodarts_core.cli`."""
import sys

from emodarts_core.cli import main

sys.exit(main())
