"""The architecture search: the architect's alpha step (``architect``), guards against
collapse (``guards``), the search loop (``loop``), whether a search decided (``quality``) and
perturbation-based selection of the genotype from a finished supernet (``perturbation``).

May import: ``train`` (run directories and the training engine), ``nas``, ``fast``, ``data``,
``common`` and ``config``.
"""
