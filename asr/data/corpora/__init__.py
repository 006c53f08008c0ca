"""Corpus preparers: each turns a corpus as downloaded into Kaldi-style data directories.

- :mod:`asr.data.corpora.synth`: ``prepare_synth(out, ...)``, a synthetic corpus made offline with espeak-ng;
- :mod:`asr.data.corpora.yesno`: ``prepare_yesno(root, out)``, Kaldi's yes/no corpus (openslr resource 1);
- :mod:`asr.data.corpora.an4`: ``prepare_an4(root, out)``, the CMU AN4 census database.

Each returns ``{set name: data dir}`` and validates what it wrote. The command line front end is
``python -m asr.data.prepare <corpus> --root ... --out data/<corpus>`` (:mod:`asr.data.prepare`), which
also downloads a missing corpus when asked. The modules are imported lazily by that front end, so this
package imports nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.errors import InputError


def corpus_not_found(
    name: str, root: str | os.PathLike, *, expected: str, homepage: str, archive_url: str
) -> InputError:
    """The error a preparer raises when its corpus is not at ``root``: what to download, from where.

    Args:
        name: the corpus name as the CLI spells it (``an4``, ``yesno``).
        root: where the corpus was looked for.
        expected: the file or folder that should exist under ``root`` (shown to the user).
        homepage: the corpus's official page.
        archive_url: the archive ``--download`` fetches.
    """
    root = Path(root)
    return InputError(
        f"{name} corpus not found (expected {root / expected}). Download {archive_url} (see {homepage}) and unpack "
        f"it so that {root / expected} exists, or run: python -m asr.data.prepare {name} --root {root} --download",
        root,
    )
