"""CPU-speed machinery that computes exactly what the plain PyTorch code would: the channels-last
layout and the convolution and pooling kernels run in it (``layout``), channels-last BatchNorm
(``batchnorm``), the candidates' fused weighted sum (``weighted_sum``), what the edges leaving
one state share (``source_cache``), banked tanh RNNs and the recurrent stacks' runner
(``recurrent``), a node's candidates on two threads (``branched_nodes`` on ``branches``), and
activation checkpointing and the allocator's handling of freed blocks (``memory``). The DARTS
idea does not live here: remove this package's effect and the numbers stay the same
(``tests/test_ops.py``).

May import: ``emodarts_core.common`` and ``emodarts_core.config``. Imported by ``nas`` (the
kernels inside the model) and by the loops that set its process-wide switches (``search.loop``,
``train.runs`` records them); never by ``results`` or ``batch``.
"""
