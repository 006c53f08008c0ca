"""Feature extraction and feature archives.

Modules (import them directly; this package imports nothing heavy so worker processes start fast):

- :mod:`asr.features.options`: :class:`~asr.features.options.FeatureOptions` (fbank / MFCC, Kaldi defaults).
- :mod:`asr.features.extract`: kaldi-native-fbank and torchaudio (batched, any torch device) extractors.
- :mod:`asr.features.cmvn`: per-speaker / per-utterance CMVN with Kaldi-layout statistics.
- :mod:`asr.features.deltas`: Kaldi ``add-deltas`` over the concatenated frames of many utterances.
- :mod:`asr.features.archive`: the HDF5 archive (``/feats``, ``/utt_ids``, ``/offsets``): writer and reader.
- :mod:`asr.features.compute`: data dir -> archive, parallel; ``python -m asr.features.compute``.
- :mod:`asr.features.kaldi_ark`: Kaldi ark/scp export and import; ``python -m asr.features.kaldi_ark``.
- :mod:`asr.features.context_window`: splicing frames into context windows for the DNN (torch).
"""
