"""The architecture search: the architect's alpha step (``architect``), guards against
collapse (``guards``), the search loop (``loop``) and whether a search decided (``quality``).

May import: ``train`` (run directories and the training engine), ``nas``, ``fast``, ``data``,
``common`` and ``config``.
"""
