"""The command-line options shared by the benchmark scripts that search or train on a corpus
(``search_gate.py``, ``architecture_effect.py``); imported by them, not run."""
from __future__ import annotations

import argparse


def add_corpus_arguments(ap: argparse.ArgumentParser) -> None:
    """``--corpus``, ``--data-root``, ``--protocol``, ``--profile`` and ``--cache-dir``."""
    ap.add_argument("--corpus", default="generated")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--protocol", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--cache-dir", default=None, help="the feature cache directory")
