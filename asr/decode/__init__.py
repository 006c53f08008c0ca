"""Decoding and forced alignment on kaldifst graphs with kaldi-decoder.

- ``asr.decode.decoder``: ``Decoder`` / ``decode_utterance`` (FasterDecoder on an HCLG) and
  ``decode_many`` (a pool of forked processes, one graph per worker).
- ``asr.decode.align``: ``align_utterance`` (forced alignment with retry beam, failures reported) and
  conversions of transition-state alignments to pdf ids, phone ids and phone segments.
- ``asr.decode.ctm``: phone-level CTM writer (centre time-stamp convention).
- ``asr.decode.acoustic_model``: ``load_acoustic_model(model_dir)`` for any model kind (model.json "kind").
- ``asr.decode.decode_dir``: decode a data dir on an HCLG, LM-weight sweep, hyp.txt / per_utt.txt /
  results.json (``python -m asr.decode.decode_dir``); ``asr.decode.lm_weight``: LM-weight sweeps and choice.
"""
