"""The figures the emoDARTS paper reports: the one place the book and the tables take them from.

Rajapakshe, Rana, Khalifa, Sisman, Schuller, Busso, "emoDARTS: Joint Optimisation of CNN &
Sequential Neural Network Architectures for Superior Speech Emotion Recognition", IEEE Access 12,
110492-110503 (2024), arXiv 2403.14083. Values in percent; ``None`` where the paper's figure was not
available to us (its body could not be read; see the book's "reproducing" chapter).

Caveat, for every comparison: the paper's protocol selects the best epoch on the test fold and
averages a class-balanced accuracy per batch; we select on a validation split of other speakers and
compute WA / UA once over the whole test fold.
"""
from __future__ import annotations

CITATION = "Rajapakshe et al., IEEE Access 12:110492 (2024), arXiv 2403.14083"

PAPER_RESULTS: dict[str, dict[str, float | None]] = {
    "iemocap": {"wa": 78.03, "ua": 76.55},
    "msp_improv": {"wa": None, "ua": 65.63},
    "msp_podcast": {"wa": None, "ua": None},
}

