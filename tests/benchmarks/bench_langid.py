"""Language identification packages compared on real short and mixed Chinese/English text.

Text nobody here wrote: Debian's translated manual pages (packages manpages, manpages-zh,
-de, -fr, -es, -ru, -ja; `apt-get download` them and `dpkg-deb -x` each into one folder).
Paragraphs are taken from the roff source (macros and font escapes removed) and labelled by
the folder they come from (zh_CN and zh_TW are `zh`, the untranslated sections are `en`).
Measured per package that ships its model (nothing downloaded at run time):

- accuracy on short snippets (the first 20-60 characters of a paragraph) and on whole
  paragraphs, per language;
- on *mixed* Chinese paragraphs (Chinese man pages, where command names, options and paths
  are Latin: at least 20% of their letters), the fraction called `zh` (a mixed document
  must not be rejected as `en`);
- speed in paragraphs/s on one core.

    apt-get download manpages manpages-zh manpages-de manpages-fr manpages-es manpages-ru manpages-ja
    for f in *.deb; do dpkg-deb -x $f root; done
    python tests/benchmarks/bench_langid.py root/usr/share/man [--per-language 400]

Run it with a Python that has the candidates installed (py3langid, pycld2,
lingua-language-detector); a missing one is skipped.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

FOLDER_LANGUAGE = {"zh_CN": "zh", "zh_TW": "zh", "de": "de", "fr": "fr", "es": "es", "ru": "ru", "ja": "ja"}
_FONT = re.compile(r"\\f(\[[^]]*\]|\(..|.)")
_ESCAPES = re.compile(r"\\(\(..|\[[^]]*\]|[-e&|^ ]|\*\(..|\*.)")


def roff_paragraphs(text: str) -> list[str]:
    """Plain paragraphs of a roff page: text lines between macros, escapes removed."""
    paragraphs, current = [], []
    for line in text.splitlines():
        if line.startswith((".", "'")):
            if line[:3] in (".PP", ".SH", ".SS", ".TP", ".IP", ".LP", ".P ") or line.strip() in (".P", ".br", ".sp"):
                if current:
                    paragraphs.append(" ".join(current))
                current = []
            continue
        line = _ESCAPES.sub(lambda m: "-" if m.group(1) == "-" else " ", _FONT.sub("", line)).strip()
        if line:
            current.append(line)
    if current:
        paragraphs.append(" ".join(current))
    return [re.sub(r"\s+", " ", p).strip() for p in paragraphs]


def letters(text: str) -> tuple[int, int, int, int]:
    """(CJK, Latin, Cyrillic, all) letters of `text`."""
    cjk = latin = cyrillic = total = 0
    for ch in text:
        if ch.isalpha():
            total += 1
            name = unicodedata.name(ch, "")
            if "LATIN" in name:
                latin += 1
            elif "CYRILLIC" in name:
                cyrillic += 1
            elif ord(ch) >= 0x2E80:
                cjk += 1
    return cjk, latin, cyrillic, total


def in_its_script(paragraph: str, language: str) -> bool:
    """Translated man pages keep some paragraphs untranslated (option lists, code): a zh/ja
    paragraph needs half its letters CJK, a ru one half Cyrillic, to keep its folder's label."""
    cjk, _, cyrillic, total = letters(paragraph)
    if language in ("zh", "ja"):
        return cjk >= 0.5 * total
    if language == "ru":
        return cyrillic >= 0.5 * total
    return True


def is_mixed(paragraph: str) -> bool:
    """Chinese with English terms: at least 30% CJK and 20% Latin letters."""
    cjk, latin, _, total = letters(paragraph)
    return cjk >= 0.3 * total and latin >= 0.2 * total


def load(man_root: Path, per_language: int, seed: int) -> tuple[dict[str, list[tuple[str, str]]], list[tuple[str, str]]]:
    """language -> [(paragraph, page)] of at least 60 characters in their language's script, and
    the mixed Chinese/English paragraphs of the Chinese pages; each a seeded sample."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for page in sorted(man_root.rglob("*.gz")):
        folder = page.relative_to(man_root).parts[0]
        language = FOLDER_LANGUAGE.get(folder, "en" if folder.startswith("man") else None)
        if language is None:
            continue
        try:
            text = gzip.decompress(page.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for paragraph in roff_paragraphs(text):
            if len(paragraph) >= 60:
                found[language].append((paragraph, str(page.relative_to(man_root))))
    rng = random.Random(seed)
    mixed = [item for item in found.get("zh", []) if is_mixed(item[0])]
    chosen = {language: rng.sample(kept, min(per_language, len(kept)))
              for language, items in sorted(found.items()) if (kept := [i for i in items if in_its_script(i[0], language)])}
    return chosen, rng.sample(mixed, min(per_language, len(mixed)))


def detectors() -> dict[str, Callable[[str], str]]:
    """name -> text -> ISO 639-1 code ('un' when undecided), for each installed package."""
    found: dict[str, Callable[[str], str]] = {}
    try:
        import py3langid

        found["py3langid"] = lambda text: py3langid.classify(text)[0]
    except ImportError:
        pass
    try:
        import pycld2

        def cld2(text: str) -> str:
            _, _, details = pycld2.detect(text)
            code = details[0][1]
            return "zh" if code.startswith("zh") else ("un" if code == "un" else code.split("-")[0])

        found["pycld2"] = cld2
    except ImportError:
        pass
    try:
        from lingua import LanguageDetectorBuilder

        detector = LanguageDetectorBuilder.from_all_languages().build()

        def lingua(text: str) -> str:
            language = detector.detect_language_of(text)
            return "un" if language is None else language.iso_code_639_1.name.lower()

        found["lingua"] = lingua
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("man_root", type=Path, help="folder holding man1..man8, zh_CN, de, ... (usr/share/man)")
    parser.add_argument("--per-language", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data, mixed = load(args.man_root, args.per_language, args.seed)
    print("paragraphs per language: " + ", ".join(f"{lang} {len(items)}" for lang, items in data.items())
          + f"; mixed zh (>= 30% CJK, >= 20% Latin letters): {len(mixed)}")
    print(f"{'package':<10} {'short acc':>9} {'para acc':>9} {'zh short':>9} {'en short':>9} {'mixed→zh':>9} {'para/s':>8}")
    for name, detect in detectors().items():
        short_hits, para_hits, total = Counter(), Counter(), Counter()
        started = time.perf_counter()
        n = 0
        for language, items in data.items():
            for paragraph, _ in items:
                short = paragraph[: 20 + len(paragraph) % 41]
                total[language] += 1
                if detect(short) == language:
                    short_hits[language] += 1
                if detect(paragraph) == language:
                    para_hits[language] += 1
                n += 2
        elapsed = time.perf_counter() - started
        mixed_zh = sum(detect(p) == "zh" for p, _ in mixed) / max(1, len(mixed))
        all_total = sum(total.values())
        print(f"{name:<10} {sum(short_hits.values()) / all_total:>9.3f} {sum(para_hits.values()) / all_total:>9.3f} "
              f"{short_hits['zh'] / max(1, total['zh']):>9.3f} {short_hits['en'] / max(1, total['en']):>9.3f} "
              f"{mixed_zh:>9.3f} {n / elapsed:>8.0f}")
        per_lang_line = ", ".join(f"{lang} {short_hits[lang] / total[lang]:.2f}/{para_hits[lang] / total[lang]:.2f}"
                                  for lang in total)
        print(f"{'':<10} short/paragraph accuracy per language: {per_lang_line}")


if __name__ == "__main__":
    main()
