"""The benchmark corpus of bench_corpus.py: real bilingual text nobody here wrote, laid out the
way users' corpora are (half JSONL `{"text", "id", "source"}`, half CPM-Bee txt), with planted
exact, near and mojibake duplicates whose two copies sit in different halves.

Text comes from Debian packages fetched with `apt-get download` and unpacked with `dpkg-deb -x`
(Chinese and English documentation, man pages, fortunes; `PACKAGES`). Everything is seeded and
cached under the work folder, never in the repository.

Truth for near duplicates: `jaccard` = character 5-gram Jaccard of whitespace-collapsed text;
a pair with Jaccard >= 0.8 is a near duplicate.
"""

from __future__ import annotations

import gzip
import html
import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import zstandard

from corpus.pipeline.clean import clean_text, html_to_text
from corpus.pipeline.quality import build_checks, judge
from corpus.pipeline.read import txt_line_to_text
from corpus.pipeline.split import split_text
from schemas import BuildConfig
from schemas.build_config import CleanConfig

# Debian (bookworm) packages with Chinese (zh-cn, zh-tw) and English documentation.
PACKAGES = [
    "debian-reference-zh-cn", "debian-reference-zh-tw", "debian-reference-en", "debian-handbook", "harden-doc",
    "debian-edu-doc-zh-cn", "debian-edu-doc-en", "debian-faq", "debian-faq-zh-cn", "doc-debian", "python3.11-doc",
    "manpages-zh", "manpages", "manpages-dev", "fortunes", "fortunes-min", "fortunes-zh",
    "gimp-help-zh-cn", "gimp-help-en", "maint-guide", "maint-guide-zh-cn", "maint-guide-zh-tw",
    "kicad-doc-zh", "kicad-doc-en", "debian-edu-doc-legacy-zh-cn",
]
SEED = 20260
NEAR_THRESHOLD = 0.8
_TROFF_MACRO = re.compile(r"^[.'][A-Za-z]{1,3}\s?")
_TROFF_ESCAPE = re.compile(r"\\f[BIRP1-4]|\\f\(..|\\\(..|\\\[[^\]]*\]|\\[&|^%~0:c]|\\s[+-]?\d")
_CJK = re.compile(r"[\u3400-\u9fff]")
# what CPM-Bee's txt rules turn into newlines: a text holding one cannot be one txt line unchanged
_TXT_ESCAPES = ("<n>", "\\r", "\\n")


# --- the packages -------------------------------------------------------------------------------

def ensure_packages(root: Path) -> list[str]:
    """`PACKAGES` unpacked under `root` (downloaded once into `root/../debs`); returns the .deb names."""
    debs = root.parent / "debs"
    marker = root / ".complete"
    wanted = "\n".join(PACKAGES) + "\n"
    if not (marker.exists() and marker.read_text() == wanted):
        debs.mkdir(parents=True, exist_ok=True)
        missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
        if missing:
            subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for package in PACKAGES:
            subprocess.run(["dpkg-deb", "-x", str(next(debs.glob(f"{package}_*.deb"))), str(root)], check=True)
        marker.write_text(wanted)
    return sorted(next(debs.glob(f"{p}_*.deb")).name for p in PACKAGES)


def read_maybe_gz(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except OSError:
            return ""
    return data.decode("utf-8", errors="ignore")


def troff_to_text(source: str) -> str:
    lines = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", ".TH", ".so", ".de", ".ig", ".\\}")):
            continue
        line = _TROFF_ESCAPE.sub("", _TROFF_MACRO.sub("", line)).replace("\\-", "-").replace("\\e", "\\")
        if line.strip():
            lines.append(line.strip())
    return "\n".join(lines)


def _paragraph_documents(text: str, rng: random.Random) -> Iterator[str]:
    """A long text (an HTML chapter) as section-sized documents: paragraphs joined until a
    length drawn from a wide distribution (median ~1,500 characters, some over 10,000)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    target, current = rng.lognormvariate(7.3, 0.9), []
    size = 0
    for paragraph in paragraphs:
        current.append(paragraph)
        size += len(paragraph)
        if size >= target:
            yield "\n\n".join(current)
            target, current, size = rng.lognormvariate(7.3, 0.9), [], 0
    if current:
        yield "\n\n".join(current)


def _html_text(path: Path) -> str:
    text = html.unescape(html_to_text(read_maybe_gz(path)))
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n[ \t]*(\n[ \t]*)+", "\n\n", text)


def documents(root: Path) -> Iterator[tuple[str, str]]:
    """(source, text) of every document, in a fixed order; `source` names package and language."""
    share = root / "usr/share"
    html_sets = [
        ("debian-reference/zh-cn", sorted((share / "debian-reference").glob("*.zh-cn.html"))),
        ("debian-reference/zh-tw", sorted((share / "debian-reference").glob("*.zh-tw.html"))),
        ("debian-reference/en", sorted((share / "debian-reference").glob("*.en.html"))),
        ("debian-handbook/zh-CN", sorted((share / "doc/debian-handbook/html/zh-CN").glob("*.html"))),
        ("debian-handbook/zh-TW", sorted((share / "doc/debian-handbook/html/zh-TW").glob("*.html"))),
        ("debian-handbook/en-US", sorted((share / "doc/debian-handbook/html/en-US").glob("*.html"))),
        ("harden-doc/zh-CN", sorted((share / "doc/harden-doc/html/zh-CN").glob("*.html"))),
        ("harden-doc/en-US", sorted((share / "doc/harden-doc/html/en-US").glob("*.html"))),
        ("debian-edu-doc/zh-cn", sorted((share / "doc/debian-edu-doc-zh-cn").glob("*.html"))),
        ("debian-edu-doc/en", sorted((share / "doc/debian-edu-doc-en").glob("*.html"))),
        ("debian-faq/zh-cn", sorted((share / "doc/debian/FAQ/zh-cn").glob("*.html"))),
        ("debian-faq/en", sorted((share / "doc/debian/FAQ").glob("*.html"))),
        ("maint-guide/zh-cn", sorted((share / "doc/maint-guide-zh-cn/html").glob("*.html"))),
        ("maint-guide/zh-tw", sorted((share / "doc/maint-guide-zh-tw/html").glob("*.html"))),
        ("maint-guide/en", sorted((share / "doc/maint-guide/html").glob("*.html"))),
        ("gimp-help/zh_CN", sorted((share / "gimp/2.0/help/zh_CN").glob("*.html"))),
        ("gimp-help/en", sorted((share / "gimp/2.0/help/en").glob("*.html"))),
        ("kicad-doc/zh", sorted((share / "doc/kicad/help/zh").glob("*.html"))),
        ("kicad-doc/en", sorted((share / "doc/kicad/help/en").glob("*.html"))),
        ("debian-edu-doc-legacy/zh-cn", sorted((share / "doc/debian-edu-doc-legacy-zh-cn").glob("*.html"))),
        ("python3.11-doc/en", sorted((share / "doc/python3.11/html").rglob("*.html"))),
    ]
    for source, paths in html_sets:
        for path in paths:
            rng = random.Random(f"{SEED}:{path.relative_to(root)}")
            for text in _paragraph_documents(_html_text(path), rng):
                yield source, text
    for lang in ("zh_CN", "zh_TW"):
        for path in sorted((share / "man" / lang).rglob("*.gz")):
            yield f"manpages-zh/{lang}", troff_to_text(read_maybe_gz(path))
    for path in sorted((share / "man").glob("man*/*.gz")):
        yield "manpages/en", troff_to_text(read_maybe_gz(path))
    for path in sorted((share / "doc/debian").glob("*.txt*")):
        yield "doc-debian/en", read_maybe_gz(path)
    fortunes = share / "games/fortunes"
    for path in sorted(p for p in fortunes.rglob("*") if p.is_file() and p.suffix not in (".dat", ".u8")):
        lang = "zh" if path.name in ("chinese", "tang300", "song100") else "en"
        for text in read_maybe_gz(path).split("\n%\n"):
            yield f"fortunes/{lang}", text.strip("%\n ")


# --- truth --------------------------------------------------------------------------------------

def char_shingles(text: str, n: int = 5) -> set[str]:
    text = " ".join(text.split())
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


def jaccard(a: str, b: str) -> float:
    """Character 5-gram Jaccard of whitespace-collapsed text: the truth for near duplicates."""
    sa, sb = char_shingles(a), char_shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


# --- near-duplicate edits -----------------------------------------------------------------------

_SENTENCES_EN = re.compile(r"(?<=[.!?])\s+")
_SENTENCE_ZH = re.compile(r"(?<=[。！？])")
_PUNCT_SWAP = {",": "，", ".": "。", "，": ",", "。": ".", ":": "：", "：": ":", ";": "；", "(": "（", ")": "）"}


def _edit_once(text: str, kind: str, rng: random.Random, donor: str) -> str:
    """One realistic edit of `text`; `donor` is another document to take an inserted sentence from."""
    if kind == "swap":  # two neighbouring words swap places
        words = text.split(" ")
        if len(words) > 3:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if kind == "delete":  # a few words (or CJK characters) go
        i = rng.randrange(len(text))
        return text[:i] + text[i + rng.randint(3, 25):]
    if kind == "insert":  # a sentence from another document
        pieces = [s for s in (_SENTENCE_ZH.split(donor) if _CJK.search(donor) else _SENTENCES_EN.split(donor))
                  if 10 < len(s) < 200]
        sentence = rng.choice(pieces) if pieces else donor[:80]
        i = rng.randrange(len(text))
        while i < len(text) and text[i] not in " \n。，":
            i += 1
        return text[:i] + " " + sentence.strip() + text[i:]
    if kind == "punct":  # punctuation changes (ASCII <-> full width), one or a few
        positions = [i for i, c in enumerate(text) if c in _PUNCT_SWAP]
        if positions:
            i = rng.choice(positions)
            return text[:i] + _PUNCT_SWAP[text[i]] + text[i + 1:]
        return text
    if kind == "space":  # whitespace changes: double spaces, a line break moved
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(["  ", "\n", " \n "]) + text[i:]
    if kind == "cjk":  # a Chinese character replaced by another one (a typo or variant)
        positions = [i for i, c in enumerate(text) if _CJK.match(c)]
        if positions:
            i = rng.choice(positions)
            return text[:i] + chr(rng.randrange(0x4E00, 0x9FA5)) + text[i + 1:]
        return text
    raise ValueError(kind)


def near_copy(text: str, edits: int, rng: random.Random, donor: str) -> str:
    kinds = ["swap", "delete", "insert", "punct", "space"] + (["cjk"] * 3 if _CJK.search(text) else [])
    for _ in range(edits):
        text = _edit_once(text, rng.choice(kinds), rng, donor)
    return text


def mojibake(text: str) -> str:
    """UTF-8 read as Windows-1252 (the commonest mojibake; bytes 1252 leaves undefined kept as
    the C1 characters Windows software produces), for ftfy to repair."""
    import ftfy.bad_codecs  # noqa: F401  (registers the codec)

    return text.encode("utf-8").decode("sloppy-windows-1252")


# --- the corpus ---------------------------------------------------------------------------------

@dataclass
class Doc:
    source: str
    text: str
    half: str = ""  # "jsonl" or "txt"
    file: str = ""  # path relative to the corpus root
    line: int = 0  # 1-based line in `file`
    id: int = 0  # JSONL documents only


@dataclass
class Pair:
    kind: str  # "exact", "near" or "mojibake"
    a: tuple[str, int]  # (file, line) of the original
    b: tuple[str, int]  # (file, line) of the copy
    jaccard: float  # of the two texts as written (mojibake: of the repaired copy)
    chars: int


def _round_trips(text: str) -> bool:
    """The text reads back unchanged from a CPM-Bee txt line (no literal `<n>`, `\\n`, `\\r`)."""
    return not any(escape in text for escape in _TXT_ESCAPES) and txt_line_to_text(to_txt_line(text)) == text


def as_read(doc: Doc) -> str:
    """The document's text as the build reads it back from its half."""
    return txt_line_to_text(to_txt_line(doc.text)) if doc.half == "txt" else doc.text


def passes_filters(text: str) -> bool:
    """Every piece of the text passes the build's default split and quality filter (so that a
    planted pair measures dedupe, not the filters)."""
    config, checks = _default_filters()
    pieces = split_text(text, config.split.max_length)
    return all(len(piece) >= config.split.min_length and judge(piece, config.quality, checks)[0] for piece in pieces)


@lru_cache(maxsize=1)
def _default_filters():
    config = BuildConfig.model_validate({"input": ["x"], "output": "x", "dataset_name": "x", "task_name": "x"})
    return config, build_checks(config.quality)


def to_txt_line(text: str) -> str:
    return text.strip().replace("\r", "").replace("\n", "<n>")


def make_corpus(corpus: Path, packages_root: Path, target_mb: float, pairs_wanted: int = 1200) -> dict:
    """Write the corpus under `corpus` (jsonl/ and txt/ halves); returns its description with the
    planted pairs. Cached: an existing corpus with the same settings is reused."""
    settings = {"target_mb": target_mb, "pairs": pairs_wanted, "seed": SEED, "version": 5}
    info_path = corpus.with_name(corpus.name + ".json")  # beside the input folder, not in it
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info["settings"] == settings:
            return info
    debs = ensure_packages(packages_root)
    rng = random.Random(SEED)
    docs = [Doc(source, text.strip()) for source, text in documents(packages_root) if text.strip()]
    scale = min(1.0, target_mb * (1 << 20) / sum(len(d.text.encode()) for d in docs))
    if scale < 1.0:  # a deterministic sample of every source
        docs = [d for d in docs if rng.random() < scale]
    by_source: dict[str, int] = {}
    for doc in docs:
        by_source[doc.source] = by_source.get(doc.source, 0) + len(doc.text.encode())
    rng.shuffle(docs)
    # halves: alternate by running byte count, so each half gets about half the bytes
    halves = {"jsonl": 0, "txt": 0}
    for doc in docs:
        doc.half = min(halves, key=lambda h: (halves[h], h))
        halves[doc.half] += len(doc.text.encode())

    # planted pairs: originals chosen among documents that survive cleaning the same way in both
    # formats, copies placed in the other half at a random position
    candidates = [d for d in docs if 300 <= len(d.text) <= 9000 and _round_trips(d.text)
                  and clean_text(d.text, CleanConfig()) == d.text and len(d.text.split()) > 20 and passes_filters(d.text)]
    originals = rng.sample(candidates, k=min(pairs_wanted, len(candidates)))
    plan: list[tuple[str, Doc, Doc]] = []
    for i, original in enumerate(originals):
        other = "txt" if original.half == "jsonl" else "jsonl"
        if i % 6 == 0:
            kind, text = "exact", original.text
        elif i % 24 == 1:
            kind, text = "mojibake", mojibake(original.text)
        else:
            kind = "near"
            donor = docs[rng.randrange(len(docs))].text
            edits = rng.choice([1, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48])
            edits = max(1, edits * len(original.text) // 3000)
            text = near_copy(original.text, edits, rng, donor)
        copy = Doc(original.source, text, half=other)
        plan.append((kind, original, copy))
    placed = docs + [copy for _, _, copy in plan]
    order = list(range(len(docs)))
    # copies go to random positions among the documents
    for index in range(len(docs), len(placed)):
        order.insert(rng.randrange(len(order) + 1), index)
    write_halves(corpus, [placed[i] for i in order], rng)

    pairs = []
    for kind, original, copy in plan:
        copy_text = clean_text(as_read(copy), CleanConfig()) if kind == "mojibake" else as_read(copy)
        pairs.append(asdict(Pair(kind, (original.file, original.line), (copy.file, copy.line),
                                 jaccard(as_read(original), copy_text), len(original.text))))
        if kind == "exact" and pairs[-1]["jaccard"] != 1.0:
            raise AssertionError(f"exact copy {copy.file}:{copy.line} does not read back as its original")
    corpus_bytes = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    info = {
        "settings": settings, "debs": debs, "documents": len(placed), "text_bytes": sum(len(d.text.encode()) for d in placed),
        "file_bytes": corpus_bytes,
        "by_source": {k: v for k, v in sorted(by_source.items())}, "scale": scale,
        "halves": {h: sum(len(d.text.encode()) for d in placed if d.half == h) for h in halves},
        "long_documents": sum(1 for d in placed if len(d.text) > 2000),
        "mojibake_repaired": sum(1 for p in pairs if p["kind"] == "mojibake" and p["jaccard"] == 1.0),
        "files": sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file()),
        "pairs": pairs,
    }
    info_path.write_text(json.dumps(info, ensure_ascii=False))
    return info


def write_halves(corpus: Path, docs: list[Doc], rng: random.Random, file_bytes: int = 6 << 20) -> None:
    """Write `docs` in order: JSONL documents to jsonl/part-NNNN.jsonl[.gz|.zst], txt documents to
    txt/part-NNNN.txt[.gz|.zst]; sets each document's file, line and id."""
    shutil.rmtree(corpus, ignore_errors=True)
    next_id = rng.randrange(1000, 100000)
    for half in ("jsonl", "txt"):
        (corpus / half).mkdir(parents=True)
        lines: list[str] = []
        size, index = 0, 0
        members = [d for d in docs if d.half == half]
        for n, doc in enumerate(members):
            name = f"{half}/part-{index:04d}.{half}" + ("", ".gz", ".zst")[index % 3]
            doc.file, doc.line = name, len(lines) + 1
            if half == "jsonl":
                doc.id = next_id
                next_id += rng.randint(1, 3)
                lines.append(json.dumps({"text": doc.text, "id": doc.id, "source": doc.source}, ensure_ascii=False))
            else:
                lines.append(to_txt_line(doc.text))
            size += len(lines[-1].encode())
            if size >= file_bytes or n == len(members) - 1:
                body = ("\n".join(lines) + "\n").encode()
                if name.endswith(".gz"):
                    body = gzip.compress(body, 6, mtime=0)
                elif name.endswith(".zst"):
                    body = zstandard.ZstdCompressor().compress(body)
                (corpus / name).write_bytes(body)
                lines, size, index = [], 0, index + 1


def read_texts(corpus: Path) -> dict[tuple[str, int], str]:
    """Every document's text as the pipeline reads it (txt rules / the JSON `text` field), by (file, line)."""
    texts = {}
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        elif path.suffix == ".zst":
            data = zstandard.ZstdDecompressor().decompress(data)
        name = str(path.relative_to(corpus))
        for number, line in enumerate(data.decode("utf-8").split("\n")[:-1], start=1):
            texts[(name, number)] = json.loads(line)["text"] if ".jsonl" in name else txt_line_to_text(line)
    return texts
