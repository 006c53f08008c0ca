"""asr: a DNN-HMM hybrid speech recognition toolkit in Python and PyTorch.

Folders, in the order one utterance travels from wav to WER:

- ``asr.data``: Kaldi-style data directories, corpus preparers, audio reading.
- ``asr.features``: filterbank / MFCC extraction, CMVN, HDF5 feature archives, context windows.
- ``asr.lang``: phone sets, lexicons, n-gram language models, L.fst and G.fst.
"""

__version__ = "0.1.0"
