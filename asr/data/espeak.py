"""A small ctypes driver for the espeak-ng library shipped by the ``espeakng-loader`` wheel.

It synthesizes text offline into float32 samples, with no ``espeak-ng`` binary and no audio device:
``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ...)`` makes ``espeak_Synth`` run to completion in the
calling thread, handing the samples (int16, mono, at the rate ``espeak_Initialize`` returns: 22050 Hz)
to a callback that collects them. The calling sequence is espeak-ng's ``speak_lib.h`` API:
``espeak_Initialize`` -> ``espeak_SetSynthCallback`` -> ``espeak_SetVoiceByName("en-us+m3")`` ->
``espeak_SetParameter`` (rate, pitch, range, word gap, volume) -> ``espeak_Synth`` ->
``espeak_Synchronize`` -> ``espeak_Terminate``.

A :class:`Voice` is a language voice (``en-us``, ``en-gb-scotland``...) plus an optional voice variant
from ``espeak-ng-data/voices/!v`` (``m3``, ``f2``, ``klatt``...) and prosody settings. :func:`list_languages`
and :func:`list_variants` read what the shipped data holds.

Global state and determinism: the library keeps one current voice and one set of parameters per
process, is not thread-safe, and its waveform generator keeps state from one utterance to the next
(pitch-flutter phase, roughness cycle counter, gain control; measured: the same text synthesized twice in
a row gives different samples). So :func:`synthesize` loads a fresh copy of the library for every call
(``dlopen``, initialize, synthesize, ``espeak_Terminate``, ``dlclose``; about 5 ms) and seeds libc's
``rand`` (used for breath noise) and espeak-ng's own generator: the same ``(text, voice, seed)`` gives
identical samples whatever was synthesized before, in any process. Calls are serialized by a lock;
for parallel synthesis use processes, never threads. If something else in the process keeps its own
handle on the same library file (e.g. ``phonemizer``), ``dlclose`` cannot unload it and the state
carries over; do not mix the two in one process when determinism matters.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.errors import AsrError

__all__ = [
    "Voice",
    "VoiceInfo",
    "EspeakError",
    "synthesize",
    "sample_rate",
    "list_languages",
    "list_variants",
    "version",
]

# speak_lib.h constants (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_EE_OK = 0


class EspeakError(AsrError, RuntimeError):
    """The espeak-ng library failed (not found, cannot initialize, unknown voice, synthesis error)."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice and its prosody.

    Attributes:
        language: a language voice name as espeak-ng knows it (``en-us``, ``en-gb-x-rp``...; see
            :func:`list_languages`).
        variant: a voice variant file name in ``voices/!v`` (``m1``..``m8``, ``f1``..``f5``, ``klatt``...;
            see :func:`list_variants`) or None for the language's default voice.
        rate: speaking rate in words per minute (espeak-ng accepts 80..450; 175 is its default).
        pitch: base pitch, 0..100 (50 = the voice's normal).
        pitch_range: pitch range, 0..100 (0 = monotone, 50 = normal).
        word_gap: extra pause between words in units of 10 ms (at the default rate).
        volume: amplitude 0..200 (100 = normal).
    """

    language: str = "en-us"
    variant: str | None = None
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0
    volume: int = 100

    @property
    def name(self) -> str:
        """The name espeak-ng selects the voice by: ``language`` or ``language+variant``."""
        return self.language if not self.variant else f"{self.language}+{self.variant}"


@dataclass(frozen=True)
class VoiceInfo:
    """One entry of espeak-ng's voice list.

    Attributes:
        name: display name (``"English (Scotland)"``, ``"male3"``).
        identifier: file under ``espeak-ng-data/lang`` or ``voices`` (``"gmw/en-GB-scotland"``, ``"!v/m3"``).
        languages: language codes in the voice file's order, its own code first (``("en-gb-scotland", "en")``);
            ``("variant",)`` for variants.
        gender: ``"m"``, ``"f"`` or ``""`` when unspecified.
    """

    name: str
    identifier: str
    languages: tuple[str, ...]
    gender: str

    @property
    def variant(self) -> str:
        """For a variant, the name to put after ``+`` (the file name: ``"m3"``); else the identifier."""
        return self.identifier.split("/", 1)[1] if self.identifier.startswith("!v/") else self.identifier


class _EspeakEvent(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


class _EspeakVoice(ctypes.Structure):
    # ``languages`` is a packed list (priority byte, zero-terminated name)..., so it is read as raw memory.
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)

_lock = threading.Lock()
_chunks: list[np.ndarray] = []


def _on_samples(wav, num_samples, events) -> int:
    if wav and num_samples > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    return 0  # 0 = continue synthesis


_callback = _SynthCallback(_on_samples)  # module-level: the library keeps the pointer while loaded


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise EspeakError("the espeakng-loader package is not installed (pip install espeakng-loader)") from e
    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except RuntimeError as e:
        raise EspeakError(f"espeakng-loader has no espeak-ng data: {e}") from e


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_EspeakVoice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int


_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name) if _libc_name else None
_sample_rate: int | None = None


@contextmanager
def _fresh_library() -> Iterator[ctypes.CDLL]:
    """Load, initialize, yield, then terminate and unload the library (caller holds ``_lock``)."""
    global _sample_rate
    lib_path, data_path = _paths()
    try:
        lib = ctypes.CDLL(lib_path)
    except OSError as e:
        raise EspeakError(f"cannot load {lib_path}: {e}") from e
    try:
        _declare(lib)
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data {data_path}")
        _sample_rate = int(rate)
        lib.espeak_SetSynthCallback(_callback)
        try:
            yield lib
        finally:
            lib.espeak_Terminate()
    finally:
        import _ctypes

        handle = lib._handle
        del lib
        _ctypes.dlclose(handle)


def _set_voice(lib: ctypes.CDLL, voice: Voice) -> None:
    if voice.variant:  # espeak-ng silently ignores an unknown variant
        _, data_path = _paths()
        if "/" in voice.variant or not (Path(data_path) / "voices" / "!v" / voice.variant).is_file():
            raise EspeakError(f"espeak-ng has no voice variant {voice.variant!r}; see list_variants()")
    status = lib.espeak_SetVoiceByName(voice.name.encode())
    if status != _EE_OK:
        raise EspeakError(
            f"espeak-ng has no voice {voice.name!r} (status {status}); see list_languages() and list_variants()"
        )
    for param, value in (
        (_RATE, voice.rate),
        (_PITCH, voice.pitch),
        (_RANGE, voice.pitch_range),
        (_WORDGAP, voice.word_gap),
        (_VOLUME, voice.volume),
    ):
        status = lib.espeak_SetParameter(param, int(value), 0)
        if status != _EE_OK:
            raise EspeakError(f"espeak_SetParameter({param}, {value}) failed with status {status} for {voice}")


def synthesize(text: str, voice: Voice = Voice(), *, ssml: bool = False, seed: int = 0) -> tuple[np.ndarray, int]:
    """Synthesize ``text`` with ``voice``.

    Args:
        text: what to say (UTF-8; with ``ssml=True`` it may hold SSML elements such as
            ``<prosody rate="90%">...</prosody>`` and ``<break time="120ms"/>``).
        voice: the voice and prosody.
        ssml: interpret ``<...>`` elements as SSML.
        seed: seed for the random breath noise: the same ``(text, voice, ssml, seed)`` gives identical
            samples, whatever was synthesized before (the library is reloaded for every call).

    Returns:
        ``(samples, rate)``: float32 mono samples in [-1, 1) and their sample rate in Hz (22050). No
        sentence-end pause is appended; espeak-ng's own short onset and offset silence is kept.

    Raises:
        EspeakError: the library cannot be loaded, the voice does not exist, or synthesis fails.
    """
    flags = _CHARS_UTF8 | (_SSML if ssml else 0)
    data = text.encode("utf-8") + b"\0"
    with _lock, _fresh_library() as lib:
        _set_voice(lib, voice)
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed(seed)
        if _libc is not None:
            _libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        _chunks.clear()
        try:
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
            if status != _EE_OK:
                raise EspeakError(f"espeak_Synth failed with status {status} for {text!r}")
            status = lib.espeak_Synchronize()
            if status != _EE_OK:
                raise EspeakError(f"espeak_Synchronize failed with status {status} for {text!r}")
            pcm = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
        finally:
            _chunks.clear()
        rate = _sample_rate
    assert rate is not None
    return pcm.astype(np.float32) / 32768.0, rate


def sample_rate() -> int:
    """The rate (Hz) espeak-ng synthesizes at (22050 for the shipped library)."""
    if _sample_rate is None:
        version()  # initializes once
    assert _sample_rate is not None
    return _sample_rate


def version() -> str:
    """The espeak-ng library's version string (e.g. ``"1.52.0"``)."""
    with _lock, _fresh_library() as lib:
        return lib.espeak_Info(None).decode("utf-8", "replace")


def _parse_languages(address: int | None) -> tuple[str, ...]:
    """Decode espeak's ``languages`` field: (priority byte, zero-terminated name)..., then a 0 byte.

    Names are kept in file order: the first is the voice's own language code."""
    if not address:
        return ()
    entries = []
    offset = 0
    while True:
        priority = ctypes.c_ubyte.from_address(address + offset).value
        if priority == 0:
            break
        name = ctypes.string_at(address + offset + 1)
        entries.append((priority, name.decode("utf-8", "replace")))
        offset += 1 + len(name) + 1
    return tuple(name for _, name in entries)


def _list_voices(spec_language: bytes | None) -> list[VoiceInfo]:
    with _lock, _fresh_library() as lib:
        if spec_language is None:
            array = lib.espeak_ListVoices(None)
        else:
            spec = _EspeakVoice()
            buffer = ctypes.create_string_buffer(spec_language)
            spec.languages = ctypes.cast(buffer, ctypes.c_void_p)
            array = lib.espeak_ListVoices(ctypes.byref(spec))
        out = []
        i = 0
        while array[i]:
            v = array[i].contents
            out.append(
                VoiceInfo(
                    name=(v.name or b"").decode("utf-8", "replace"),
                    identifier=(v.identifier or b"").decode("utf-8", "replace"),
                    languages=_parse_languages(v.languages),
                    gender={1: "m", 2: "f"}.get(v.gender, ""),
                )
            )
            i += 1
        return out


def list_languages(prefix: str = "") -> list[VoiceInfo]:
    """The language voices in the shipped data whose own language code starts with ``prefix``
    (e.g. ``"en"``), sorted by that code. Variants and MBROLA voices are not included.

    Select one with ``Voice(language=info.languages[0])``.
    """
    voices = [v for v in _list_voices(None) if v.languages and v.languages[0].startswith(prefix)]
    return sorted(voices, key=lambda v: v.languages[0])


def list_variants() -> list[VoiceInfo]:
    """The voice variants in the shipped data (``voices/!v``), sorted by identifier (``"!v/m3"``).

    Select one with ``Voice(language, variant=info.variant)``, e.g. ``Voice("en-gb", "m3")``.
    """
    return sorted(_list_voices(b"variant"), key=lambda v: v.identifier)
