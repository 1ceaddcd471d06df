"""Training domains from text that every Debian machine already has: no downloads, no data sets.

Each domain is a list of documents gathered from the file system, visited in a fixed pseudo-random order
(by a hash of the path, so a byte cap takes a spread of packages rather than the alphabetically first),
concatenated up to ``cap_bytes`` and split at one byte offset into train (first part) and validation
(last part). The split depends only on the files present, so repeated runs on one machine see the same
bytes, and a document is on both sides of the split at most once.

Domains:

* ``code``      the Python standard library's ``.py`` sources;
* ``pydoc``     the Python language reference and library topics shipped with Python (``pydoc_data``);
* ``man``       English man pages under /usr/share/man, gunzipped and stripped of roff markup;
* ``legal``     /usr/share/common-licenses and the packages' /usr/share/doc/*/copyright files;
* ``changelog`` Debian package changelogs (/usr/share/doc/*/changelog.Debian.gz);
* ``words``     /usr/share/dict/words, when a word list is installed.
"""

from __future__ import annotations

import ast
import gzip
import re
import sysconfig
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

MIN_DOMAINS = 3
DOC_SEPARATOR = b"\n\n"


@dataclass(frozen=True)
class Domain:
    """One domain's bytes, split; ``natural_bytes`` estimates all such text on the machine (for the prior)."""

    name: str
    train: torch.Tensor  # uint8
    val: torch.Tensor  # uint8
    natural_bytes: float
    documents: int


def _ordered(paths: Iterator[Path]) -> list[Path]:
    """Paths in a fixed order that does not follow the alphabet (crc32 of the path, then the path)."""
    return sorted(paths, key=lambda p: (zlib.crc32(str(p).encode()), str(p)))


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _gunzip(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def _gzip_size(path: Path) -> int:
    """Uncompressed size from the gzip trailer (modulo 2^32, fine for text files)."""
    with path.open("rb") as f:
        f.seek(-4, 2)
        return int.from_bytes(f.read(4), "little")


_ROFF_TEXT_MACROS = {
    "SH",
    "SS",
    "B",
    "I",
    "BR",
    "RB",
    "IR",
    "RI",
    "BI",
    "IB",
    "IP",
    "TP",
    "SM",
    "SB",
    "Nm",
    "Nd",
    "Fl",
    "Ar",
    "Op",
    "Xr",
    "Pa",
    "Dv",
    "Em",
    "Sh",
    "It",
    "Li",
    "Ql",
    "Va",
    "Cm",
}
_ROFF_NAMED = {
    "aq": "'",
    "dq": '"',
    "em": "--",
    "en": "-",
    "bu": "*",
    "co": "(c)",
    "rg": "(R)",
    "lq": '"',
    "rq": '"',
    "oq": "'",
    "cq": "'",
    "ga": "`",
    "ha": "^",
    "ti": "~",
    "mi": "-",
    "pl": "+",
    "mu": "x",
    "->": "->",
    "<-": "<-",
    "hy": "-",
}
_ROFF_INLINE = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\s[+-]?\d|\\[&|^%:,/!cdu0]|\\\*(?:\(..|\[[^\]]*\]|.)")
_ROFF_CHAR = re.compile(r"\\\((..)|\\\[([^\]]{1,8})\]")


def strip_roff(text: str) -> str:
    """Crude roff-to-text: keep the text of text-bearing macros, drop the others and inline escapes."""
    out = []
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro not in _ROFF_TEXT_MACROS or not rest:
                continue
            line = rest.replace('"', "")
        line = _ROFF_INLINE.sub("", line)
        line = _ROFF_CHAR.sub(lambda m: _ROFF_NAMED.get(m.group(1) or m.group(2), ""), line)
        out.append(line.replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " "))
    return "\n".join(out)


def _man(path: Path) -> bytes:
    return strip_roff(_gunzip(path).decode("utf-8", "replace")).encode()


@dataclass(frozen=True)
class Source:
    """Where a domain's documents are and how to turn one into text bytes."""

    name: str
    find: Callable[[], list[Path]]
    load: Callable[[Path], bytes]
    raw_size: Callable[[Path], int]


def _stdlib() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [p for p in root.rglob("*.py") if "site-packages" not in p.parts and "pydoc_data" not in p.parts]


def _pydoc_topics() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"]) / "pydoc_data" / "topics.py"
    return [root] if root.exists() else []


def _pydoc_load(path: Path) -> bytes:
    """The topics module is one dict literal of reference texts; read it without executing anything."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "topics" for t in node.targets):
            topics = ast.literal_eval(node.value)
            return DOC_SEPARATOR.join(str(topics[k]).encode() for k in sorted(topics))
    return b""


def _man_pages() -> list[Path]:
    return [p for p in Path("/usr/share/man").glob("man[1-8]/*.gz") if p.is_file()]


def _legal() -> list[Path]:
    licenses = [p for p in Path("/usr/share/common-licenses").glob("*") if p.is_file()]
    return licenses + [p for p in Path("/usr/share/doc").glob("*/copyright") if p.is_file()]


def _changelogs() -> list[Path]:
    return [p for p in Path("/usr/share/doc").glob("*/changelog.Debian.gz") if p.is_file()]


def _words() -> list[Path]:
    return [p for p in (Path("/usr/share/dict/words"),) if p.is_file()]


def _size(path: Path) -> int:
    return path.stat().st_size


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("code", _stdlib, _read, _size),
        Source("pydoc", _pydoc_topics, _pydoc_load, _size),
        Source("man", _man_pages, _man, _gzip_size),
        Source("legal", _legal, _read, _size),
        Source("changelog", _changelogs, _gunzip, _gzip_size),
        Source("words", _words, _read, _size),
    )
}


def split_bytes(data: bytes, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Train = the first ``1 - val_fraction`` of the bytes, validation = the rest; deterministic."""
    cut = int(round(len(data) * (1.0 - val_fraction)))
    arr = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return arr[:cut].clone(), arr[cut:].clone()


def load_domain(source: Source, cap_bytes: int, val_fraction: float) -> Domain | None:
    """Read documents in hash order until ``cap_bytes``; ``None`` when the machine has none of them."""
    paths = _ordered(iter(source.find()))
    if not paths:
        return None
    chunks: list[bytes] = []
    taken = raw_taken = 0
    for path in paths:
        try:
            text = source.load(path)
        except (OSError, EOFError, zlib.error, UnicodeDecodeError):
            continue
        if not text.strip():
            continue
        chunks.append(text)
        taken += len(text) + len(DOC_SEPARATOR)
        raw_taken += source.raw_size(path)
        if taken >= cap_bytes:
            break
    if not chunks:
        return None
    data = DOC_SEPARATOR.join(chunks)[:cap_bytes]
    # Natural share: all such text on the machine, at the cleaned/raw ratio of what was read.
    raw_total = sum(_safe_size(source, p) for p in paths)
    natural = raw_total * (sum(map(len, chunks)) / max(raw_taken, 1))
    train, val = split_bytes(data, val_fraction)
    return Domain(source.name, train, val, float(natural), len(chunks))


def _safe_size(source: Source, path: Path) -> int:
    try:
        return source.raw_size(path)
    except OSError:
        return 0


def load_corpus(
    names: list[str] | None = None,
    cap_bytes: int = 2_000_000,
    val_fraction: float = 0.1,
    log: Callable[[str], None] = print,
) -> list[Domain]:
    """The requested domains (default: all known) that exist here; at least :data:`MIN_DOMAINS` of them."""
    wanted = names or list(SOURCES)
    unknown = [n for n in wanted if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown domain {unknown[0]!r}; known: {', '.join(SOURCES)}")
    domains = []
    for name in wanted:
        domain = load_domain(SOURCES[name], cap_bytes, val_fraction)
        if domain is None:
            log(f"corpus: skipping domain {name!r}: none of its files exist on this machine")
            continue
        log(
            f"corpus: {name:<10} {domain.documents:>5} documents, {len(domain.train):>9,} train + "
            f"{len(domain.val):>7,} validation bytes (machine has ~{domain.natural_bytes / 1e6:,.1f} MB)"
        )
        domains.append(domain)
    if len(domains) < MIN_DOMAINS:
        raise RuntimeError(
            f"only {len(domains)} domains found ({[d.name for d in domains]}); "
            f"a mixture search needs at least {MIN_DOMAINS}"
        )
    return domains


def natural_shares(domains: list[Domain]) -> dict[str, float]:
    """Each domain's share of the machine's text: the mixture one gets by concatenating everything."""
    total = sum(d.natural_bytes for d in domains)
    return {d.name: d.natural_bytes / total for d in domains}


def as_target(domain: Domain) -> Domain:
    """The domain as a held-out target: never trained on, so all its bytes can score the model.

    Validation becomes train + validation (in file order), which gives the target's loss more windows and
    so less evaluation noise; the training bytes are kept only because every corpus domain needs some
    (a mixture gives the target weight 0, so none is ever sampled).
    """
    return replace(domain, val=torch.cat([domain.train, domain.val]))
