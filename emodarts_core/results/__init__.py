"""Reading finished runs: collecting them into rows (``collect``), tables (``report``), figures
(``plots``, ``feature_plots``), the sentences after each figure (``readings``), genotype drawings
(``render``), notebook widgets (``widgets``), the paper's figures (``paper``), the committed
records wherever a notebook runs (``records``), cross-corpus tables and verdicts (``cross_corpus``),
the evidence chapter's own tables and figures (``evidence_tables``, ``evidence_plots``), and how
much of a trained network's score is its architecture's (``architecture_effect``).

May import: ``search``, ``train``, ``nas``, ``data``, ``common`` and ``config``; never ``fast``.
"""
