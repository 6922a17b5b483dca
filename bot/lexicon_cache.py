"""The compiled lexicon, cached on disk by content so that start-up takes about a second.

Compiling reads ~110,000 names and the word-frequency lists of five languages (several seconds);
the pickle, keyed by every input file's bytes, the compiler's own code and the versions of the
packages the data comes from, loads in a fraction of that.  A changed lexicon never meets a stale
index, and a cache that cannot be read or written is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from .commonwords import word_statistics
from .drugs import DrugIndex
from .lexicon import load_lexicon

def cache_dir() -> Path:
    """Where compiled lexicons are kept: $PHARMAMOD_CACHE_DIR, else the user's cache folder."""
    env = os.environ.get("PHARMAMOD_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pharmamod"


def drug_index(owner_lex: list[Path], tsvs: list[Path]) -> DrugIndex:
    """Compile the lexicon, or load the compiled copy made from exactly the same inputs.

    Compiling reads ~110,000 names and five word-frequency lists (several seconds); the pickle
    written next to nothing else in the user's cache loads in a fraction of that.  Its key covers
    every input file's bytes and the versions of the packages the data comes from, so a changed
    lexicon never meets a stale index.  A cache that cannot be read or written is ignored.
    """
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{_versions()}".encode())
    here = Path(__file__).parent
    for module in ("drugs.py", "lexicon.py", "commonwords.py", "normalize.py"):
        digest.update((here / module).read_bytes())  # the compiler's code is an input too
    for path in [*owner_lex, *tsvs]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    target = cache_dir() / f"drugs-{digest.hexdigest()[:24]}.pickle"
    try:
        with target.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this function, keyed by content
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    words = word_statistics()
    index = DrugIndex(load_lexicon(owner_lex, tsvs), words.common, words.languages)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as f:
            pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, target)
        for stale in target.parent.glob("drugs-*.pickle"):
            if stale != target:
                stale.unlink(missing_ok=True)
    except OSError:
        pass
    return index


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("drug-named-entity-recognition", "wordfreq", "pharmamod"):
        try:
            out.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}=?")
    return ",".join(out)


CACHE_FORMAT = 5
