"""Training and evaluating networks: run directories (``runs``), metrics (``metrics``), the
training engine shared by every network (``engine``), the final training of a genotype
(``fit``), evaluation of finished runs on a corpus (``evaluate``), the hand-designed networks
(``handdesigned``), the baselines (``baselines``, ``egemaps``) and the last-or-best epoch rule
judged on validation speakers (``selection``).

May import: ``nas``, ``fast``, ``data``, ``common`` and ``config``.
"""
