"""Command-line front end of the corpus preparers: corpus on disk -> Kaldi-style data directories.

Usage::

    python -m asr.data.prepare yesno [--root DIR] [--out data/yesno] [--download]
    python -m asr.data.prepare an4   [--root DIR] [--out data/an4] [--dev-speakers "fash fjmd ..."] [--download]
    python -m asr.data.prepare librispeech [--root DIR] [--out data/librispeech] [--subsets train-clean-5,dev-clean-2]
                                     [--download]      (also fetches the LM files of openslr 11 to <root>/lm)
    python -m asr.data.prepare timit [--root DIR] [--out data/timit] [--phone-set 39] [--phone-map FILE]
                                     [--dev-list FILE] [--test-list FILE]
    python -m asr.data.prepare synth [--out data/synth] [--minutes 40] [--seed 0] [--snr-min 10] [--snr-max 30]
                                     [--sample-rate 16000] [--jobs N]
    python -m asr.data.prepare lhotse --recordings R.jsonl.gz --supervisions S.jsonl.gz --out data/x
                                     [--manifest-reader auto|lhotse|builtin]

``--root`` defaults to ``$ASR_CORPORA/<corpus>``; ``ASR_CORPORA`` defaults to ``../shared/corpora``, and a
relative value is taken relative to the current directory (so the default fits a user running from the
repository root, next to a ``shared/corpora`` folder). ``--out`` defaults to ``data/<corpus>`` (also
relative to the current directory).

A corpus that is not at ``--root`` stops with a message saying what to download and from where; with
``--download`` the archive is fetched (urllib) and unpacked (tarfile, with the ``data`` safety filter)
to ``--root`` first. Every preparer validates the data directories it writes.

``lhotse`` is not a corpus but any corpus lhotse prepared: its RecordingSet and SupervisionSet manifests
become one data dir at ``--out`` (:mod:`asr.data.corpora.lhotse_manifests`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from asr.errors import AsrError

log = logging.getLogger(__name__)

CORPORA = ("synth", "yesno", "an4", "librispeech", "timit", "lhotse")
DEFAULT_CORPORA_DIR = "../shared/corpora"


def corpora_dir() -> Path:
    """``$ASR_CORPORA`` (default ``../shared/corpora``), resolved against the current directory."""
    return Path(os.environ.get("ASR_CORPORA", DEFAULT_CORPORA_DIR)).resolve()


def download_and_unpack(url: str, dest: Path, *, strip_top: bool) -> Path:
    """Download a ``.tar.gz`` from ``url`` and unpack it into ``dest``.

    Args:
        url: the archive.
        dest: the folder to create (must not exist yet, or be empty).
        strip_top: the archive holds one top folder whose contents become ``dest`` (AN4's ``an4/``);
            otherwise the archive's entries go into ``dest`` as they are (yes/no's ``waves_yesno/``).

    Returns:
        ``dest``. The archive goes to a temporary folder beside ``dest`` and is moved into place only once
        fully unpacked, so an interrupted download leaves nothing that looks like a corpus.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise AsrError(f"{dest} exists and is not empty; not unpacking {url} over it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.download-") as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        log.info("downloading %s", url)
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
        unpacked = Path(tmp) / "unpacked"
        unpacked.mkdir()
        log.info("unpacking %s", archive.name)
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        source = unpacked
        if strip_top:
            entries = [p for p in unpacked.iterdir() if not p.name.startswith(".")]
            if len(entries) != 1 or not entries[0].is_dir():
                raise AsrError(f"{url}: expected one top folder in the archive, found {[p.name for p in entries]}")
            source = entries[0]
        if dest.exists():
            dest.rmdir()
        shutil.move(str(source), str(dest))
    log.info("corpus unpacked to %s", dest)
    return dest


#: corpora whose preparers take ``skip_bad`` (keep recordings with unreadable headers, for compute --skip-bad)
SKIP_BAD_CORPORA = ("yesno", "an4", "librispeech", "timit")


def prepare(corpus: str, root: Path | None, out: Path, *, download: bool = False, **options) -> dict[str, Path]:
    """Prepare ``corpus`` from ``root`` into data directories under ``out``; returns ``{set: data dir}``.

    ``options`` go to the corpus's preparer (``dev_speakers`` for an4; ``subsets`` for librispeech;
    ``phone_set``, ``phone_map``, ``dev_speakers``, ``test_speakers`` for timit; ``train_minutes``, ``seed``,
    ``snr_db``, ``sample_rate``, ``num_jobs`` for synth; ``skip_bad`` for the corpora in ``SKIP_BAD_CORPORA``).
    ``download`` fetches a missing corpus first.
    """
    if corpus == "synth":
        from asr.data.corpora.synth import prepare_synth
        from asr.data.validate import validate_data_dir

        result = prepare_synth(out, **options)
        for path in result.values():  # the synth preparer validates too; this is cheap and says what was made
            log.info("%s", validate_data_dir(path))
        return result
    if corpus == "lhotse":
        from asr.data.corpora.lhotse_manifests import import_lhotse
        from asr.errors import ConfigError

        if not options.get("recordings") or not options.get("supervisions"):
            raise ConfigError("lhotse needs --recordings and --supervisions manifests")
        import_lhotse(options["recordings"], options["supervisions"], out, reader=options.get("reader", "auto"))
        return {Path(out).name: Path(out)}
    if root is None:
        root = corpora_dir() / corpus
    if corpus == "yesno":
        from asr.data.corpora import yesno

        if download and not (root / "waves_yesno").is_dir():
            download_and_unpack(yesno.ARCHIVE_URL, root, strip_top=False)
        return yesno.prepare_yesno(root, out, **options)
    if corpus == "an4":
        from asr.data.corpora import an4

        if download and not (root / "etc" / "an4_train.transcription").is_file():
            download_and_unpack(an4.ARCHIVE_URL, root, strip_top=True)
        return an4.prepare_an4(root, out, **options)
    if corpus == "librispeech":
        from asr.data.corpora import librispeech

        if download:
            librispeech.download_librispeech(root, options.get("subsets", librispeech.MINI_SUBSETS))
        return librispeech.prepare_librispeech(root, out, **options)
    if corpus == "timit":
        from asr.data.corpora import timit

        if download:
            raise AsrError(f"TIMIT is licensed by the LDC ({timit.HOMEPAGE}) and cannot be downloaded here")
        return timit.prepare_timit(root, out, **options)
    raise AsrError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module docstring); exit status 1 with a one-line message on bad input."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m asr.data.prepare", description="Prepare a corpus as Kaldi-style data directories."
    )
    parser.add_argument("corpus", choices=CORPORA)
    parser.add_argument("--root", type=Path, default=None, help="corpus folder (default $ASR_CORPORA/<corpus>)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default data/<corpus>)")
    parser.add_argument("--download", action="store_true", help="download and unpack the corpus if it is missing")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help=f"keep recordings whose audio header is unreadable (a warning names each) instead of stopping; "
        f"feature extraction with --skip-bad then leaves them out and lists them ({', '.join(SKIP_BAD_CORPORA)})",
    )
    an4_group = parser.add_argument_group("an4")
    an4_group.add_argument("--dev-speakers", default=None, help="held-out speakers, separated by spaces or commas")
    libri_group = parser.add_argument_group("librispeech")
    libri_group.add_argument(
        "--subsets", default=None, help="subsets, separated by commas (default train-clean-5,dev-clean-2)"
    )
    timit_group = parser.add_argument_group("timit")
    timit_group.add_argument("--phone-set", choices=("61", "48", "39"), default="39", help="phones of text (39)")
    timit_group.add_argument("--phone-map", type=Path, default=None, help="61-48-39 table (recipes/timit/local)")
    timit_group.add_argument("--dev-list", type=Path, default=None, help="dev speakers file (recipes/timit/local)")
    timit_group.add_argument("--test-list", type=Path, default=None, help="test speakers file (core test set)")
    synth_group = parser.add_argument_group("synth")
    synth_group.add_argument("--minutes", type=float, default=40.0, help="training audio to make (minutes)")
    synth_group.add_argument("--seed", type=int, default=0)
    synth_group.add_argument("--snr-min", type=float, default=10.0, help="lowest noise SNR (dB)")
    synth_group.add_argument("--snr-max", type=float, default=30.0, help="highest noise SNR (dB)")
    synth_group.add_argument("--sample-rate", type=int, default=16000)
    synth_group.add_argument("--jobs", type=int, default=None, help="parallel synthesis jobs")
    lhotse_group = parser.add_argument_group("lhotse")
    lhotse_group.add_argument("--recordings", type=Path, help="lhotse RecordingSet manifest (.jsonl[.gz])")
    lhotse_group.add_argument("--supervisions", type=Path, help="lhotse SupervisionSet manifest (.jsonl[.gz])")
    lhotse_group.add_argument(
        "--manifest-reader", choices=("auto", "lhotse", "builtin"), default="auto", help="default: lhotse if installed"
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    out = args.out if args.out is not None else Path("data") / args.corpus
    options: dict = {}
    if args.corpus == "synth":
        if args.root is not None:
            log.warning("--root is not used by the synth corpus (it is generated)")
        options = dict(
            train_minutes=args.minutes,
            seed=args.seed,
            snr_db=(args.snr_min, args.snr_max),
            sample_rate=args.sample_rate,
            num_jobs=args.jobs,
        )
    elif args.corpus == "lhotse":
        options = dict(recordings=args.recordings, supervisions=args.supervisions, reader=args.manifest_reader)
    elif args.corpus == "librispeech" and args.subsets is not None:
        options["subsets"] = tuple(args.subsets.replace(",", " ").split())
    elif args.corpus == "timit":
        options["phone_set"] = args.phone_set
        lists = {"phone_map": args.phone_map, "dev_speakers": args.dev_list, "test_speakers": args.test_list}
        options.update((key, value) for key, value in lists.items() if value is not None)
    elif args.corpus == "an4" and args.dev_speakers is not None:
        options["dev_speakers"] = tuple(args.dev_speakers.replace(",", " ").split())
    if args.skip_bad:
        if args.corpus not in SKIP_BAD_CORPORA:
            print(
                f"error: --skip-bad is supported for {', '.join(SKIP_BAD_CORPORA)}, not {args.corpus}", file=sys.stderr
            )
            return 1
        options["skip_bad"] = True
    try:
        result = prepare(args.corpus, args.root, out, download=args.download, **options)
    except (AsrError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, path in result.items():
        print(f"{name} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
