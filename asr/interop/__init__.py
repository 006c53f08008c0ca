"""Interoperability with other toolkits' files.

- :mod:`asr.interop.kaldi`: Kaldi pdf-id alignments (``ali-to-pdf`` output) into ``ali.h5`` and back, and
  DNN log-likelihood arks for Kaldi's ``latgen-faster-mapped``. Feature arks: :mod:`asr.features.kaldi_ark`.
- lhotse manifests into data dirs: :mod:`asr.data.corpora.lhotse_manifests` (``python -m asr.data.prepare
  lhotse``).
- ONNX / TorchScript export of the DNN: :mod:`asr.nnet.export`.
"""
