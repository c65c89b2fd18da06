"""Batches of experiments: one fold's search, training and baselines (``experiment``) and the grid
over corpora x folds x seeds, locally or on Ray, through papermill on the notebook shipped with
this package (``reproduce``, ``job.ipynb``).

May import: every layer below it (``results``, ``search``, ``train``, ``nas``, ``data``,
``common``, ``config``); never ``fast``.
"""
