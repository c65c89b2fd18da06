"""The search space and the networks: the operation registry (``ops``) over the convolutional
and sequential candidates (``cnn_ops``, ``seq_ops``), mixed edges (``mixed``), cells
(``cells``), the supernet with its architecture weights (``supernet``), the continuous
relaxations (``relaxation``), genotypes and their sampling (``genotype``), the network a genotype
derives (``network``) and looking inside either (``inspect``).

May import: ``fast``, ``common`` and ``config`` (and, by the layers, ``data``; it needs none of it).
"""
