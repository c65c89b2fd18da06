"""From files on disk to feature tensors: the emotion vocabulary (``emotions``), the corpus
loaders (``corpora``), audio reading (``audio``), the MFCC image in torch (``mfcc``) and its
librosa reference with the comparison measures (``mfcc_reference``), the on-disk feature cache
(``feature_cache``), the pipeline from many files to one tensor (``features``), normalisation
(``normalization``), speaker-independent folds (``folds``), a fold's tensors (``datasets``),
downloads (``download``) and where the data of a notebook comes from (``source``).

May import: ``emodarts_core.common`` and ``emodarts_core.config``.
"""
