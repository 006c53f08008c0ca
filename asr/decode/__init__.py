"""Decoding and forced alignment on kaldifst graphs with kaldi-decoder.

- ``asr.decode.decoder``: ``Decoder`` / ``decode_utterance`` (FasterDecoder on an HCLG) and
  ``decode_many`` (a pool of forked processes, one graph per worker).
- ``asr.decode.align``: ``align_utterance`` (forced alignment with retry beam, failures reported) and
  conversions of transition-state alignments to pdf ids, phone ids and phone segments.
- ``asr.decode.ctm``: phone-level CTM writer (centre time-stamp convention).
"""
