"""Helpers every layer may use: atomic file writes (``files``), locks on run directories and
generated data (``locks``), progress bars (``progress``), seeding (``seeding``) and the torch
thread count (``threads``).

May import: the standard library and third-party packages only; nothing of emodarts_core.
"""
