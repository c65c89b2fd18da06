"""CPU-speed machinery that computes exactly what the plain PyTorch code would: channels-last
BatchNorm (``batchnorm``), banked tanh RNNs (``recurrent``), a node's candidates on two threads
(``branches``) and the allocator's handling of freed blocks (``memory``). The DARTS idea does not
live here: remove this package's effect and the numbers stay the same (``tests/test_ops.py``).

May import: ``emodarts_core.common`` and ``emodarts_core.config``. Imported by ``nas`` (the
kernels inside the model) and by the loops that set its process-wide switches (``search.loop``,
``train.runs`` records them); never by ``results`` or ``batch``.
"""
