"""Check `tokenization` against CPM-Bee's reference implementation, and write the golden files.

The reference (github:OpenBMB/CPM-Bee, `src/`) is imported from a path given on the command
line; small stand-ins for `bmtrain`, `jieba` and `pkg_resources` let it import on CPU, and its
vocabulary is redirected to the file under test. Nothing here is part of the test suite: when
the reference or the vocabulary is absent the script says so and exits 0.

    # compare on the official vocab: CCPM samples, Chinese Debian manuals (when installed),
    # English pydoc, random strings
    python tests/benchmarks/compare_tokenizer_reference.py \\
        --reference ../scratch/cpm-bee/src --vocab ../shared/cpm-bee/bee.txt \\
        --ccpm ../shared/cpm-bee/ccpm_eval.jsonl --random 20000

    # regenerate tests/tokenization/golden/ (small vocab + expected outputs)
    python tests/benchmarks/compare_tokenizer_reference.py --write-golden tests/tokenization/golden

Exit status: 0 when everything agrees (or nothing to compare), 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tokenization import CPMBeeTokenizer, TokenizeError, convert_data_to_id  # noqa: E402

DEFAULT_REFERENCE = REPO.parent / "scratch" / "cpm-bee" / "src"
DEFAULT_VOCAB = REPO.parent / "shared" / "cpm-bee" / "bee.txt"
DEFAULT_CCPM = REPO.parent / "shared" / "cpm-bee" / "ccpm_eval.jsonl"

SPECIALS = ["<ans>", "<s>", "</s>", "<option_3>", "<option_12>", "</n>", "</_>", "<unk>",
            "<root>", "<mask>", "<foo_bar>", "<sep>", "<eod>", "<<", "<<<<"]
STRAYS = ["<", ">", "<>", "<>>", "<>x>", "<a<b>"]
EMOJI = ["😀", "👍🏽", "🧑‍💻", "🇨🇳", "☃"]
RARE_CJK = ["𠀀", "𪚥", "龘", "䶮", "〇", "㐀", "鿿"]
WHITESPACE = [" ", "  ", "\n", "\t", "\r", "\u3000", "\xa0", "\r\n"]


# --- the reference -------------------------------------------------------------------------

class _Anything(types.ModuleType):
    """Answers every attribute, call and subclassing: enough for bmtrain names used at import."""

    def __getattr__(self, name: str) -> "_Anything":
        if name.startswith("__"):
            raise AttributeError(name)  # keep inspect/importlib from seeing a fake __file__
        return _Anything(name)

    def __call__(self, *args: Any, **kwargs: Any) -> "_Anything":
        return _Anything("call")

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


def _install_stand_ins() -> None:
    bmtrain = _Anything("bmtrain")
    bmtrain.rank = lambda: 0  # type: ignore[attr-defined]
    bmtrain.world_size = lambda: 1  # type: ignore[attr-defined]
    bmtrain.DistributedModule = object  # type: ignore[attr-defined]
    sys.modules.setdefault("bmtrain", bmtrain)
    for name in ("jieba", "pkg_resources"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)


def load_reference(src: Path, vocab: Path) -> tuple[Any, Callable[..., Any]]:
    """Import the reference tokenizer (reading `vocab`) and its convert_data_to_id."""
    _install_stand_ins()
    sys.path.insert(0, str(src))
    import cpm_live.tokenizers.bee as bee  # type: ignore[import-not-found]
    from cpm_live.training_tasks.bee.pretrain import convert_data_to_id as ref_convert  # type: ignore

    bee.pkg_resources = types.SimpleNamespace(resource_stream=lambda pkg, res: open(vocab, "rb"))
    return bee.CPMBeeTokenizer(), ref_convert


# --- inputs --------------------------------------------------------------------------------

def ccpm_samples(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ccpm_texts(samples: list[dict[str, Any]]) -> list[str]:
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                texts.append(k)
                walk(v)
        else:
            texts.append(node)

    for s in samples:
        walk(s)
    return texts


def english_text() -> str:
    """English prose that ships with Python (the pydoc topics), escaped."""
    import pydoc_data.topics

    return "\n".join(pydoc_data.topics.topics.values()).replace("<", "<<")


DEBIAN_ZH_HTML = [
    "/usr/share/debian-reference/*.zh-cn.html",  # debian-reference-zh-cn
    "/usr/share/doc/debian/FAQ/zh-cn/*.zh-cn.html",  # debian-faq-zh-cn
    "/usr/share/doc/debian-edu-doc-zh-cn/debian-edu-*-manual.html",  # debian-edu-doc-zh-cn
]
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


class _BlockText(HTMLParser):
    """Text of each block element (p, li, td, headings, pre, ...), whitespace collapsed."""

    BLOCKS = {"p", "li", "td", "th", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "pre", "div", "title"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.blocks: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self.parts).split())
        self.parts = []
        if text:
            self.blocks.append(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def debian_zh_paragraphs() -> list[str]:
    """Distinct mostly-Chinese paragraphs (>= 10 CJK characters, >= 30% of the non-space ones)
    of the installed Chinese Debian manuals, escaped; [] when none is installed."""
    seen: dict[str, None] = {}
    for pattern in DEBIAN_ZH_HTML:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            parser = _BlockText()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            parser.close()
            parser._flush()
            for block in parser.blocks:
                n_cjk = len(_CJK.findall(block))
                if n_cjk >= 10 and n_cjk >= 0.3 * len(block.replace(" ", "")):
                    seen.setdefault(block.replace("<", "<<"))
    return list(seen)


def random_strings(tok: CPMBeeTokenizer, n: int, seed: int) -> list[str]:
    """Random strings over the vocab's characters and pieces plus specials, `<`, emoji,
    rare CJK and whitespace; some are deliberately invalid."""
    rnd = random.Random(seed)
    plain = sorted(t for t in tok.encoder if not (t.startswith("<") and t.endswith(">")))
    chars = [t for t in plain if len(t) == 1]
    pools = [
        (chars, 40), (plain, 25), (SPECIALS, 8), (STRAYS, 1), (EMOJI, 5), (RARE_CJK, 5),
        (WHITESPACE, 10),
    ]
    weights = [w for _, w in pools]
    out = []
    for _ in range(n):
        pieces = []
        for _ in range(rnd.randint(0, 30)):
            pool = rnd.choices(pools, weights)[0][0]
            pieces.append(rnd.choice(pool))
        out.append("".join(pieces))
    return out


def random_samples(tok: CPMBeeTokenizer, n: int, seed: int) -> list[Any]:
    """Random dict trees (up to 6 deep, some with <ans> subtrees) over random strings, plus
    one wide sample with ~2000 segments."""
    rnd = random.Random(seed)
    leaves = random_strings(tok, 400, seed=seed + 1)
    keys = ["<ans>", "input", "<option_1>", "问题", "a", "b", "c", "<option_0>", "x y"]

    def tree(depth: int) -> Any:
        if depth >= 6 or rnd.random() < 0.35:
            return rnd.choice(leaves)
        return {rnd.choice(keys) + ("" if rnd.random() < 0.6 else str(i)): tree(depth + 1)
                for i in range(rnd.randint(0, 4))}

    samples = [tree(1) for _ in range(n)]
    samples.append({f"k{i}": {"v": str(i), "w": {"z": "深"}} for i in range(500)})
    return samples


# --- comparing -----------------------------------------------------------------------------

def reference_encode(ref: Any, text: str, past: dict[int, str]) -> dict[str, Any]:
    """The reference's answer as plain data: ids + ext table, or the error kind/position."""
    try:
        ids, ext = ref.encode(text, past)
    except ValueError as e:
        msg = str(e)
        if msg.startswith("Invalid special token at pos "):
            return {"error": "nested", "pos": int(msg.rsplit(" ", 1)[1])}
        return {"error": "end"}
    return {"ids": ids, "ext": ext}


def ours_encode(tok: CPMBeeTokenizer, text: str, past: dict[int, str]) -> dict[str, Any]:
    try:
        ids, ext = tok.encode(text, past)
    except TokenizeError as e:
        nested = str(e).startswith("invalid special token")
        return {"error": "nested", "pos": e.pos} if nested else {"error": "end"}
    return {"ids": ids, "ext": ext}


def compare_texts(tok: CPMBeeTokenizer, ref: Any, texts: list[str], label: str) -> int:
    bad = errors = 0
    for i, text in enumerate(texts):
        past = {tok.vocab_size + 7: "<option_9>"} if i % 7 == 3 else {}
        want = reference_encode(ref, text, past)
        got = ours_encode(tok, text, past)
        errors += "error" in want
        if want != got:
            bad += 1
            if bad <= 5:
                print(f"  [{label}] mismatch on {text[:80]!r}:\n    ref  {str(want)[:200]}\n    ours {str(got)[:200]}")
            continue
        if "ids" in want and ref.decode(want["ids"], want["ext"]) != tok.decode(got["ids"], got["ext"]):
            bad += 1
            print(f"  [{label}] decode mismatch on {text[:80]!r}")
    print(f"{label}: {len(texts)} texts ({errors} syntax errors), {sum(map(len, texts)):,} chars, "
          f"{bad} mismatches")
    return bad


def convert_outputs_equal(a: tuple, b: tuple) -> bool:
    for x, y in zip(a[:6], b[:6]):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x.dtype != y.dtype or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return a[6] == b[6]


def compare_convert(tok: CPMBeeTokenizer, ref_tok: Any, ref_convert: Callable[..., Any],
                    samples: list[Any], label: str) -> int:
    bad = errors = 0
    ours_prev = ref_prev = None
    for i, sample in enumerate(samples):
        try:
            want = ref_convert(ref_tok, sample, ref_prev, False, 16)
        except (ValueError, AssertionError, TypeError):
            want = None
            errors += 1
        try:
            got = convert_data_to_id(tok, sample, ours_prev, False, 16)
        except ValueError:
            got = None
        if (want is None) != (got is None) or (want is not None and not convert_outputs_equal(got, want)):
            bad += 1
            if bad <= 5:
                print(f"  [{label}] convert mismatch on sample {i}")
        # Chain samples in groups of four, as a packed sequence would.
        if want is not None and got is not None and i % 4 != 3:
            ours_prev, ref_prev = got[6], want[6]
        else:
            ours_prev = ref_prev = None
    print(f"{label}: {len(samples)} samples ({errors} invalid), {bad} mismatches")
    return bad


def compare(args: argparse.Namespace) -> int:
    for what, path in (("reference", args.reference), ("vocab", args.vocab)):
        if not Path(path).exists():
            print(f"skipped: {what} not found at {path}")
            return 0
    ref, ref_convert = load_reference(Path(args.reference), Path(args.vocab))
    tok = CPMBeeTokenizer(args.vocab)
    bad = 0
    if Path(args.ccpm).exists():
        samples = ccpm_samples(Path(args.ccpm))
        bad += compare_texts(tok, ref, ccpm_texts(samples), "ccpm texts")
        bad += compare_convert(tok, ref, ref_convert, samples, "ccpm convert_data_to_id")
        bad += compare_texts(tok, ref, ["\n".join(ccpm_texts(samples))], "ccpm as one text")
    else:
        print(f"ccpm sample not found at {args.ccpm}: skipped")
    debian_zh = debian_zh_paragraphs()
    if debian_zh:
        bad += compare_texts(tok, ref, debian_zh, "debian zh paragraphs")
    else:
        print("debian zh paragraphs: no Chinese Debian manual installed: skipped")
    english = english_text()
    bad += compare_texts(tok, ref, english.split("\n\n"), "english paragraphs")
    bad += compare_texts(tok, ref, [english], "english as one text")
    bad += compare_texts(tok, ref, random_strings(tok, args.random, seed=1), "random strings")
    bad += compare_convert(tok, ref, ref_convert, random_samples(tok, max(50, args.random // 20), seed=3),
                           "random samples convert_data_to_id")
    print("OK: identical" if bad == 0 else f"FAILED: {bad} mismatches")
    return 1 if bad else 0


# --- golden files --------------------------------------------------------------------------

GOLDEN_EDGE_CASES = [
    "", "<", "<<", "<<<", "<<<<", "a<", "<a", "<a<b>", "<>", "<>>", "<>a>", "x<<y", "<<ans>",
    "<ans><ans>", "<ans>x<ans>", "<option_0><option_1><option_0>", "</n></_>", "\n \n",
    "☃☃x☃", "☃<ans>☃", "a\tb\r\nc", "<s>hello</s>", "<unk>", "<mask>", "<a_b_c>", "<>x<y>",
    "abc>def", ">", ">>", "<<>>", "𠀀𠀀 𠀀", "🧑‍💻 code", "The quick brown fox jumps over the lazy dog.",
    "床前明月光，疑是地上霜。", "Python 3.11 and 中文 mixed, 2026-11-24.",
]
GOLDEN_DECODE_IDS = [[-1, 5, -100], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]


def _golden_texts(samples: list[dict[str, Any]], full: CPMBeeTokenizer) -> list[str]:
    rnd = random.Random(5)
    ccpm = ccpm_texts(rnd.sample(samples, 40)) if samples else []
    english = [p for p in english_text().split("\n\n") if 20 < len(p) < 400]
    return (GOLDEN_EDGE_CASES + rnd.sample(ccpm, min(120, len(ccpm)))
            + rnd.sample(english, 60) + random_strings(full, 160, seed=2))


def _small_vocab(full_vocab: Path, texts: list[str], out: Path) -> None:
    """A subset of the official vocab (same order) covering the golden texts, minus a few
    common characters so that unknown spans and prefix-only characters occur."""
    corpus = "\n".join(texts)
    dropped = set("灯明是")  # stays in multi-character tokens; '是' and '明' become prefix-only
    lines = full_vocab.read_text(encoding="utf-8").split("\n")
    keep = []
    for t in lines:
        if not t:
            continue
        if t.startswith("<") and t.endswith(">"):
            keep.append(t)
        elif len(t) == 1 and t in dropped:
            continue
        elif (len(t) == 1 and t.isascii()) or t.replace("</_>", " ") in corpus:
            keep.append(t)
    out.write_text("\n".join(keep) + "\n", encoding="utf-8")


def _ext_pairs(ext: dict[int, str]) -> list[list[Any]]:
    return [[int(k), v] for k, v in ext.items()]


def _states_json(states: dict[str, Any]) -> dict[str, Any]:
    return {
        "ext_table": _ext_pairs(states["ext_table"]),
        "token_id_table": {f: [[int(i), int(s)] for i, s in m.items()]
                           for f, m in states["token_id_table"].items()},
    }


def _golden_samples(samples: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    """(sample, max_depth) pairs: CCPM samples plus shapes the CCPM set lacks."""
    rnd = random.Random(9)
    picked: list[tuple[Any, int]] = [(s, 16) for s in rnd.sample(samples, min(30, len(samples)))]
    picked += [
        ("just a string sample", 16),
        ({}, 16),
        ({"<ans>": ""}, 16),
        ({"a": {"b": "c", "<ans>": {"x": "y", "z": {"q": "w"}}}, "<ans>": {"p": "1", "r": {"s": "t"}}}, 16),
        ({"a": {"b": {"c": {"d": {"e": "deep"}}}}, "<ans>": "☃灯 light"}, 3),
        ({"a": {"b": {"c": {"d": {"e": "deep"}}}}, "<ans>": "x"}, 1),
        ({"question": "<option_12> or <option_2>? ☃☃", "<ans>": "<option_12>", "x": "𠀀"}, 16),
        ({"text": "literal <<ans>> here", "<ans>": {"<option_0>": "a", "<option_1>": "b"}}, 16),
        ({"q": "</n> is not a token"}, 16),  # family `</n>` missing: error
        ({"q": "<foo_1>"}, 16),  # family `<foo>` missing: error
        ({"q": {"r": 3}}, 16),  # non-str leaf: error
        ({"q": "a<b"}, 16),  # syntax error
    ]
    return picked


def write_golden(args: argparse.Namespace) -> int:
    for what, path in (("reference", args.reference), ("vocab", args.vocab), ("ccpm", args.ccpm)):
        if not Path(path).exists():
            print(f"cannot write golden files: {what} not found at {path}")
            return 1
    out = Path(args.write_golden)
    out.mkdir(parents=True, exist_ok=True)
    samples = ccpm_samples(Path(args.ccpm))
    full = CPMBeeTokenizer(args.vocab)
    texts = _golden_texts(samples, full)
    vocab_path = out / "vocab.txt"
    _small_vocab(Path(args.vocab), texts, vocab_path)
    ref, ref_convert = load_reference(Path(args.reference), vocab_path)
    vocab_size = ref.vocab_size

    encode_cases = []
    for i, text in enumerate(texts):
        past = {vocab_size: "<option_9>", vocab_size + 1: "☃"} if i % 9 == 4 else {}
        case: dict[str, Any] = {"text": text}
        if past:
            case["past"] = _ext_pairs(past)
        got = reference_encode(ref, text, past)
        if "ids" in got:
            case["ids"] = got["ids"]
            case["ext"] = _ext_pairs(got["ext"])
            case["decoded"] = ref.decode(got["ids"], got["ext"])
        else:
            case.update(got)
        encode_cases.append(case)
    decode_cases = [{"ids": ids, "decoded": ref.decode(ids)} for ids in GOLDEN_DECODE_IDS]
    meta = {"vocab_size": vocab_size, "bos_id": ref.bos_id, "eos_id": ref.eos_id,
            "unk_id": ref.unk_id, "mask_id": ref.mask_id}
    _write_json(out / "encode.json", {"meta": meta, "encode": encode_cases, "decode": decode_cases})

    convert_cases = []
    prev = None
    for i, (sample, max_depth) in enumerate(_golden_samples(samples)):
        case = {"data": sample, "max_depth": max_depth}
        if prev is not None:
            case["prev"] = _states_json(prev)
        try:
            ids, subs, ctx, segs, rel, n, states = ref_convert(ref, sample, prev, False, max_depth)
        except (ValueError, AssertionError) as e:
            case["error"] = type(e).__name__
            prev = None
        else:
            case.update(ids=ids.tolist(), id_subs=subs.tolist(), context=ctx.tolist(),
                        segments=segs.tolist(), segment_rel=rel.tolist(), num_segments=n,
                        states=_states_json(states))
            prev = states if i % 3 != 2 else None
        convert_cases.append(case)
    _write_json(out / "convert.json", {"convert": convert_cases})
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(encode_cases)} encode + {len(convert_cases)} convert cases to {out} ({total:,} bytes)")
    return 0


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="CPM-Bee's src/ folder")
    parser.add_argument("--vocab", default=str(DEFAULT_VOCAB), help="official bee.txt")
    parser.add_argument("--ccpm", default=str(DEFAULT_CCPM), help="CCPM sample (jsonl)")
    parser.add_argument("--random", type=int, default=20000, help="number of random strings")
    parser.add_argument("--write-golden", metavar="DIR", help="write golden files to DIR instead")
    args = parser.parse_args()
    return write_golden(args) if args.write_golden else compare(args)


if __name__ == "__main__":
    sys.exit(main())
