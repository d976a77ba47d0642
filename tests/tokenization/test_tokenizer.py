"""CPMBeeTokenizer: CPM-Bee's ids, ext tables, decoded text and errors.

Expected values come from the reference implementation (golden/encode.json, written by
tests/benchmarks/compare_tokenizer_reference.py over golden/vocab.txt, a subset of bee.txt).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenization import CPMBeeTokenizer, TokenizeError


def _ext(pairs: list[list[Any]]) -> dict[int, str]:
    return {int(k): v for k, v in pairs}


def test_special_ids_match_reference(golden_tokenizer: CPMBeeTokenizer, golden_encode: dict) -> None:
    meta = golden_encode["meta"]
    tok = golden_tokenizer
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.unk_id, tok.mask_id) == (
        meta["vocab_size"], meta["bos_id"], meta["eos_id"], meta["unk_id"], meta["mask_id"]
    )
    assert len(tok) == tok.vocab_size


def test_encode_matches_reference_on_golden_texts(golden_tokenizer: CPMBeeTokenizer, golden_encode: dict) -> None:
    checked = 0
    for case in golden_encode["encode"]:
        past = _ext(case.get("past", []))
        if "error" in case:
            with pytest.raises(TokenizeError) as info:
                golden_tokenizer.encode(case["text"], past)
            if case["error"] == "nested":
                assert info.value.pos == case["pos"], case["text"]
            continue
        ids, ext = golden_tokenizer.encode(case["text"], past)
        assert ids == case["ids"], case["text"]
        assert ext == _ext(case["ext"]), case["text"]
        assert list(ext.items()) == [(int(k), v) for k, v in case["ext"]], "ext order"
        checked += 1
    assert checked > 300


def test_decode_matches_reference_on_golden_texts(golden_tokenizer: CPMBeeTokenizer, golden_encode: dict) -> None:
    for case in golden_encode["encode"]:
        if "ids" in case:
            assert golden_tokenizer.decode(case["ids"], _ext(case["ext"])) == case["decoded"]
    for case in golden_encode["decode"]:
        assert golden_tokenizer.decode(case["ids"]) == case["decoded"]


def test_double_lt_is_a_literal_lt_and_name_in_angles_is_special(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    ids, ext = tok.encode("<<ans>")
    assert ids == [tok.encoder["<"], *tok.encode("ans>")[0]] and ext == {}
    assert tok.encode("<ans>") == ([tok.encoder["<ans>"]], {})


def test_special_token_missing_from_vocab_goes_to_ext_table(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    v = tok.vocab_size
    # `</n>` is in the file but stands for "\n", so written as text it is not a known special.
    ids, ext = tok.encode("<option_3></n><option_3>")
    assert ids == [v, v + 1, v] and ext == {v: "<option_3>", v + 1: "</n>"}


def test_run_of_unknown_characters_is_one_ext_token(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    v = tok.vocab_size
    ids, ext = tok.encode("☃☃a☃")
    assert ids == [v, tok.encoder["a"], v + 1] and ext == {v: "☃☃", v + 1: "☃"}


def test_past_table_is_extended_not_modified(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    v = tok.vocab_size
    past = {v: "☃"}
    ids, ext = tok.encode("☃<x_1>", past)
    assert ids == [v, v + 1] and ext == {v: "☃", v + 1: "<x_1>"}
    assert past == {v: "☃"}


def test_repeated_short_text_is_numbered_against_each_past_table(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    v = tok.vocab_size
    assert tok.encode("☃<x_1>") == ([v, v + 1], {v: "☃", v + 1: "<x_1>"})
    # Same text again (its parse is cached): numbering still follows the new past table.
    assert tok.encode("☃<x_1>", {v: "<x_1>"}) == ([v + 1, v], {v: "<x_1>", v + 1: "☃"})
    ids, _ = tok.encode("☃<x_1>")
    ids.append(0)  # the caller owns the list it gets
    assert tok.encode("☃<x_1>")[0] == [v, v + 1]


@pytest.mark.parametrize(
    ("text", "pos"),
    [("<a<b>", 2), ("ok <x<", 5), ("<>x<y>", 3)],
)
def test_lt_inside_special_token_names_its_position(golden_tokenizer: CPMBeeTokenizer, text: str, pos: int) -> None:
    with pytest.raises(TokenizeError, match=f"pos {pos}") as info:
        golden_tokenizer.encode(text)
    assert info.value.pos == pos


@pytest.mark.parametrize(("text", "pos"), [("<", 0), ("abc<", 3), ("x <ans", 2), ("<<<", 2)])
def test_unclosed_special_token_names_where_it_opened(golden_tokenizer: CPMBeeTokenizer, text: str, pos: int) -> None:
    with pytest.raises(TokenizeError, match="unexpected end") as info:
        golden_tokenizer.encode(text)
    assert info.value.pos == pos


def test_decode_rejects_an_id_it_cannot_name(golden_tokenizer: CPMBeeTokenizer) -> None:
    with pytest.raises(ValueError, match="position 1"):
        golden_tokenizer.decode([5, golden_tokenizer.vocab_size + 3])


def test_vocab_fingerprint_is_sha256_of_file(golden_tokenizer: CPMBeeTokenizer) -> None:
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256(Path(golden_tokenizer.vocab_path).read_bytes()).hexdigest()
    assert golden_tokenizer.vocab_fingerprint == digest


def test_pickles_by_its_vocabulary(golden_tokenizer: CPMBeeTokenizer) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(golden_tokenizer))
    assert copy.engine == golden_tokenizer.engine
    assert copy.vocab_fingerprint == golden_tokenizer.vocab_fingerprint
    text = "<ans>床前明月光 ☃ the end"
    assert copy.encode(text) == golden_tokenizer.encode(text)


def test_official_vocab_known_ids(shared_cpm_bee) -> None:
    tok = CPMBeeTokenizer(shared_cpm_bee / "bee.txt")
    assert tok.vocab_size == 86583
    assert tok.encode("hello world 你好<<x<ans>\n<option_3>") == (
        [37466, 37791, 5, 10273, 40, 101, 9, 4, 86583], {86583: "<option_3>"}
    )


# --- properties --------------------------------------------------------------------------

def _alphabet(tok: CPMBeeTokenizer) -> list[str]:
    plain = sorted(t for t in tok.encoder if not (t.startswith("<") and t.endswith(">")))
    return [tok.escape(t) for t in plain[::7]] + ["<<", "<ans>", "<option_2>", "☃", "𠀀", "😀", " ", "\n", "\t", "\u3000"]


@st.composite
def escaped_texts(draw: st.DrawFn, tok: CPMBeeTokenizer) -> str:
    pieces = draw(st.lists(st.sampled_from(_alphabet(tok)), max_size=25))
    raw = draw(st.text(max_size=10))  # any characters at all, escaped
    return "".join(pieces) + tok.escape(raw)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_decode_inverts_encode_on_valid_text(golden_tokenizer: CPMBeeTokenizer, data: st.DataObject) -> None:
    text = data.draw(escaped_texts(golden_tokenizer))
    ids, ext = golden_tokenizer.encode(text)
    assert golden_tokenizer.decode(ids, ext) == text


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=40))
def test_escaped_plain_text_matches_the_definition(
    golden_tokenizer: CPMBeeTokenizer, segment_by_definition, raw: str
) -> None:
    """Escaped text has no special tokens: the ids are the longest-match segmentation, with
    each unknown span standing for its text in the ext table."""
    tok = golden_tokenizer
    ids, ext = tok.encode(tok.escape(raw))
    plain = {t: i for t, i in tok.encoder.items() if not (t.startswith("<") and t.endswith(">"))}
    assert [ext.get(i, i) for i in ids] == segment_by_definition(raw, plain)
    assert tok.unescape(tok.escape(raw)) == raw


# --- the compiled encode (engine "c") against the pure-Python path ----------------------------

SYNTAX_PIECES = ["<", "<<", ">", "<ans>", "<s>", "<option_3>", "<option_12>", "<foo_bar>", "</n>", "<>", "<>>", "<a<b>"]
ODD_CHARS = ["😀", "👍🏽", "🧑‍💻", "𠀀", "𪚥", "龘", "䶮", "鿿", " ", "  ", "\n", "\t", "\r\n", "\u3000", "\xa0"]


@pytest.fixture(scope="module")
def both_engines() -> tuple[CPMBeeTokenizer, CPMBeeTokenizer]:
    from pathlib import Path

    from tokenization.longest_match import compiled_available

    if not compiled_available():
        pytest.skip("C engine not built")
    vocab = Path(__file__).parent / "golden" / "vocab.txt"
    return CPMBeeTokenizer(vocab, engine="c"), CPMBeeTokenizer(vocab, engine="python")


def _outcome(tok: CPMBeeTokenizer, text: str, past: dict[int, str]) -> tuple:
    """What encode gives, as comparable data (ids, ext items in order) or the error."""
    before = list(past.items())
    try:
        ids, ext = tok.encode(text, past)
    except TokenizeError as e:
        return ("error", str(e), e.pos)
    assert list(past.items()) == before, "encode modified past_table"
    assert ext is not past
    return ("ok", ids, list(ext.items()))


@st.composite
def syntax_texts(draw: st.DrawFn, tok: CPMBeeTokenizer) -> str:
    """Raw strings over the vocab's pieces plus special-token syntax (valid and not), emoji,
    rare CJK and whitespace."""
    plain = sorted(t for t in tok.encoder if not (t.startswith("<") and t.endswith(">")))
    pool = st.one_of(
        st.sampled_from(plain), st.sampled_from([t for t in plain if len(t) == 1]),
        st.sampled_from(SYNTAX_PIECES), st.sampled_from(ODD_CHARS), st.text(max_size=3),
    )
    return "".join(draw(st.lists(pool, max_size=30)))


@st.composite
def past_tables(draw: st.DrawFn, tok: CPMBeeTokenizer) -> dict[int, str]:
    values = st.sampled_from(["☃", "😀", "<option_3>", "<foo_bar>", "𠀀", "龘", "</n>", "x"])
    entries = draw(st.lists(values, max_size=5))  # values may repeat, as the reference allows
    start = tok.vocab_size + draw(st.sampled_from([0, 0, 3]))
    return {start + i: v for i, v in enumerate(entries)}


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_compiled_encode_equals_python_path(both_engines, data: st.DataObject) -> None:
    c, py = both_engines
    text = data.draw(syntax_texts(py))
    past = data.draw(past_tables(py)) if data.draw(st.booleans()) else {}
    assert _outcome(c, text, past) == _outcome(py, text, past)


def test_compiled_encode_equals_python_path_on_long_texts(both_engines) -> None:
    """Past the C side's stack buffers: long text, many tokens, many distinct unknown spans
    (more than its linear search handles) and specials, with and without a past table."""
    import random

    c, py = both_engines
    rnd = random.Random(7)
    plain = sorted(t for t in py.encoder if not (t.startswith("<") and t.endswith(">")))
    pieces = [py.escape(t) for t in plain] + ["<ans>", "<option_3>", "<<", "<x_1>"] + ODD_CHARS
    for n in (50, 300, 3000):
        text = "".join(rnd.choice(pieces) for _ in range(n))
        for past in ({}, {py.vocab_size: "😀", py.vocab_size + 1: "<x_1>", py.vocab_size + 2: "😀"}):
            got = _outcome(c, text, past)
            assert got == _outcome(py, text, past)
            assert got[0] == "ok" and len(got[1]) > n // 3
        assert _outcome(c, text + "<", {}) == _outcome(py, text + "<", {})


def test_compiled_encode_takes_keywords_any_mapping_and_checks_types(both_engines) -> None:
    from types import MappingProxyType

    c, py = both_engines
    v = c.vocab_size
    past = {v: "☃"}
    assert c.encode(text="☃<x_1>", past_table=past) == py.encode("☃<x_1>", past) == ([v, v + 1], {v: "☃", v + 1: "<x_1>"})
    assert c.encode("☃<x_1>", MappingProxyType(past)) == py.encode("☃<x_1>", MappingProxyType(past))
    assert c.encode("☃", {}) == ([v], {v: "☃"})
    with pytest.raises(TypeError, match="text must be str"):
        c.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.encode("a", {}, {})  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c.encode(txt="a")  # type: ignore[call-arg]


_PLAIN = st.text(st.sampled_from(list("ab <>\n中")), max_size=6).map(lambda text: text.replace("<", "<<"))
_SPECIAL = st.from_regex(r"<[^<][^<>]{0,5}>", fullmatch=True)


@given(st.lists(st.one_of(_PLAIN, _SPECIAL), max_size=6).map("".join))
@settings(max_examples=300, deadline=None)
def test_the_vocabulary_reader_sees_the_plain_text_the_tokenizer_sees(golden_tokenizer: CPMBeeTokenizer, text: str) -> None:
    from schemas.special_tokens import plain_text

    assert plain_text(text) == "".join(golden_tokenizer.split_special(text)[0::2])
