"""`bee vocab build`: a CPM-Bee-format vocabulary learned from a corpus, usable by the tokenizer."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from corpus.dataset import build_dataset
from flows.cli import app
from schemas.special_tokens import plain_text
from tokenization.tokenizer import CPMBeeTokenizer
from tokenization.vocab import file_fingerprint, load_vocab
from tokenization.vocab_build import SPECIAL_TOKENS, VocabBuildConfig, build_vocab, build_vocab_file, choose_chars
from tokenization.vocab_corpus import sample_texts

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RAW = REPO / "corpus" / "sample" / "raw"

ENGLISH = [
    "the cat sat on the mat and the dog sat on the log",
    "the weather in the north is cold and the winds are strong",
    "a stitch in time saves nine, and the early bird catches the worm",
]
CHINESE = ["机器学习让计算机从数据中学习规律。", "深度学习是机器学习的一个分支。", "我们每天都在学习新的知识。"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "mixed.txt"
    lines = (ENGLISH + CHINESE) * 3 + ["rare ☃"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sample_vocab(tmp_path_factory) -> Path:
    """The embedded default: a vocabulary built from corpus/sample/raw."""
    path = tmp_path_factory.mktemp("vocab") / "sample-vocab.txt"
    build_vocab_file([SAMPLE_RAW], path, VocabBuildConfig(size=4096))
    return path


def test_special_tokens_come_first_in_cpm_bee_order(corpus_file):
    tokens, _ = build_vocab([corpus_file], VocabBuildConfig(size=500))
    assert tokens[:11] == ["<pad>", "<unk>", "<mask>", "<sep>", "</n>", "</_>", "<s>", "</s>", "<root>", "<ans>", "<option>"]
    assert tuple(tokens[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS


def test_special_tokens_have_the_official_ids(corpus_file, shared_cpm_bee):
    official = (shared_cpm_bee / "bee.txt").read_text(encoding="utf-8").split("\n")
    tokens, _ = build_vocab([corpus_file], VocabBuildConfig(size=500))
    for token in SPECIAL_TOKENS:
        assert tokens.index(token) == official.index(token) or token == "<eod>", token


def test_characters_follow_specials_by_code_point_then_pieces(corpus_file):
    tokens, report = build_vocab([corpus_file], VocabBuildConfig(size=500))
    chars = tokens[len(SPECIAL_TOKENS) : len(SPECIAL_TOKENS) + report.nchars]
    pieces = tokens[len(SPECIAL_TOKENS) + report.nchars :]
    assert all(len(c) == 1 for c in chars) and chars == sorted(chars)
    assert all(len(p) > 1 for p in pieces) and len(pieces) == report.npieces > 0
    assert len(set(tokens)) == len(tokens)


def test_rare_characters_fall_below_the_frequency_floor(corpus_file):
    tokens, report = build_vocab([corpus_file], VocabBuildConfig(size=500, min_char_count=2))
    assert "☃" not in tokens and report.chars_left_out == 1
    tokens, _ = build_vocab([corpus_file], VocabBuildConfig(size=500, min_char_count=1))
    assert "☃" in tokens


def test_space_and_newline_are_spelled_as_cpm_bee_spells_them(corpus_file):
    tokens, _ = build_vocab([corpus_file], VocabBuildConfig(size=500))
    assert " " not in tokens and "\n" not in tokens
    assert not any("\n" in t or "\r" in t for t in tokens)


def test_frequent_english_and_chinese_pieces_are_learned(corpus_file):
    tokens, _ = build_vocab([corpus_file], VocabBuildConfig(size=500))
    assert " the" in tokens  # a word with its leading space, as in bee.txt
    assert "学习" in tokens  # CJK runs are not split into characters before learning


def test_learned_pieces_never_look_like_special_tokens(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a <b> c <b> d <b>\n" * 5, encoding="utf-8")
    tokens, _ = build_vocab([corpus], VocabBuildConfig(size=200, min_char_count=1))
    assert [t for t in tokens[len(SPECIAL_TOKENS) :] if t.startswith("<") and t.endswith(">")] == []


def test_size_is_an_upper_bound_met_exactly_when_the_corpus_allows(corpus_file):
    small, _ = build_vocab([corpus_file], VocabBuildConfig(size=60))
    assert len(small) == 60
    large, report = build_vocab([corpus_file], VocabBuildConfig(size=100_000))
    assert len(large) == report.size < 100_000
    # Pieces are taken most frequent first, so a smaller vocabulary is a prefix of the pieces.
    medium, _ = build_vocab([corpus_file], VocabBuildConfig(size=120))
    assert medium == large[:120]


def test_too_many_characters_keeps_the_most_frequent():
    counts = Counter({"a": 5, "b": 4, "c": 3, "d": 3, " ": 100})
    config = VocabBuildConfig(size=len(SPECIAL_TOKENS) + 3)
    assert choose_chars(counts, config) == ["a", "b", "c"]


def test_size_must_leave_room_after_the_special_tokens():
    with pytest.raises(ValueError, match="size"):
        VocabBuildConfig(size=len(SPECIAL_TOKENS))


def test_written_vocab_loads_and_its_fingerprint_is_the_file_sha256(tmp_path, corpus_file):
    report = build_vocab_file([corpus_file], tmp_path / "v.txt", VocabBuildConfig(size=300))
    vocab = load_vocab(tmp_path / "v.txt")
    assert len(vocab.tokens) == report.size
    assert report.fingerprint == vocab.fingerprint == file_fingerprint(tmp_path / "v.txt")
    assert CPMBeeTokenizer(tmp_path / "v.txt").vocab_size == report.size


def test_sample_corpus_text_round_trips_through_the_built_vocab(sample_vocab):
    tokenizer = CPMBeeTokenizer(sample_vocab)
    for path in sorted((SAMPLE_RAW / "txt").glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            text = tokenizer.escape(line)
            ids, ext = tokenizer.encode(text)
            # Unknown spans come back raw from the ext table; `<` is in the vocab, so all is escaped.
            assert tokenizer.decode(ids, ext) == text
    assert tokenizer.encoder["<"] > 0


def test_sample_vocab_segments_text_into_multi_character_pieces(sample_vocab):
    tokenizer = CPMBeeTokenizer(sample_vocab)
    text = "Deep learning is a branch of machine learning. 机器学习让计算机从数据中学习规律。"
    ids, _ = tokenizer.encode(text)
    assert len(ids) < len(text) / 2


@pytest.fixture(scope="module")
def sample_vocab_tokenizer(sample_vocab):
    tokenizer = CPMBeeTokenizer(sample_vocab)
    alphabet = [t for t in tokenizer.encoder if len(t) == 1]
    return tokenizer, alphabet


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_text_over_the_vocab_characters_round_trips(sample_vocab_tokenizer, data):
    tokenizer, alphabet = sample_vocab_tokenizer
    text = data.draw(st.text(alphabet=st.sampled_from(alphabet + [" ", "\n", "<"]), max_size=80))
    ids, ext = tokenizer.encode(tokenizer.escape(text))
    assert ext == {}  # every character is in the vocabulary
    assert tokenizer.unescape(tokenizer.decode(ids, ext)) == text


def test_same_corpus_gives_the_same_bytes_in_another_process(tmp_path, corpus_file):
    # Another process has other hash seeds (Python's and the Rust trainer's).
    script = (
        "import sys; from tokenization.vocab_build import VocabBuildConfig, build_vocab_file; "
        "build_vocab_file([sys.argv[1]], sys.argv[2], VocabBuildConfig(size=400))"
    )
    subprocess.run([sys.executable, "-c", script, str(corpus_file), str(tmp_path / "a.txt")], check=True, cwd=REPO)
    build_vocab_file([corpus_file], tmp_path / "b.txt", VocabBuildConfig(size=400))
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()


def test_dataset_source_reads_escaped_text_through_cpm_bee_syntax(tmp_path):
    dataset = tmp_path / "ds"
    with build_dataset(dataset, "part-0", extra_meta={"escaped": True}) as writer:
        for _ in range(3):
            writer.write({"text": "x<<y"})
            writer.write({"question": "pick one", "<ans>": "<option_0>", "options": {"<option_0>": "yes"}})
    tokens, report = build_vocab([dataset], VocabBuildConfig(size=200, min_char_count=1))
    chars = set(tokens[len(SPECIAL_TOKENS) : len(SPECIAL_TOKENS) + report.nchars])
    assert {"x", "<", "y"} <= chars  # `<<` is one literal `<`
    assert ">" not in chars and "_" not in chars  # `<option_0>` is a special token, not text
    assert report.samples_read == 6


def test_sample_texts_of_structured_samples_are_keys_and_leaves():
    sample = {"input": "hello", "<ans>": {"answer": "w<<x <mask_0>"}, "list": ["a", "b"]}
    assert list(sample_texts(sample, in_syntax=True)) == ["input", "hello", "answer", "w<x ", "list", "a", "b"]
    assert list(sample_texts({"text": "a<<b"}, in_syntax=False)) == ["a<<b"]
    assert list(sample_texts({"text": "a<<b"}, in_syntax=True)) == ["a<b"]
    assert plain_text("no specials") == "no specials"


def test_raw_files_are_read_and_cleaned_as_the_corpus_pipeline_reads_them(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("first<n>second\n", encoding="utf-8")
    (raw / "b.jsonl").write_text('{"q": "abc", "<ans>": "d"}\nnot json\n[1]\n', encoding="utf-8")
    _, report = build_vocab([raw], VocabBuildConfig(size=100, min_char_count=1))
    assert report.samples_read == 2
    assert report.skipped == {"broken_json": 1, "not_an_object": 1}


def test_bad_sources_are_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        build_vocab([tmp_path / "missing"], VocabBuildConfig(size=100))
    odd = tmp_path / "data.csv"
    odd.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="data.csv"):
        build_vocab([odd], VocabBuildConfig(size=100))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no text"):
        build_vocab([empty], VocabBuildConfig(size=100))


def test_cli_builds_the_vocab_and_reports_it(tmp_path, corpus_file):
    out = tmp_path / "v.txt"
    result = CliRunner().invoke(app, ["vocab", "build", "--corpus", str(corpus_file), "--size", "300", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert file_fingerprint(out) in result.output
    assert len(load_vocab(out).tokens) <= 300


def test_cli_rejects_a_size_with_no_room(tmp_path, corpus_file):
    result = CliRunner().invoke(app, ["vocab", "build", "--corpus", str(corpus_file), "--size", "5", "-o", str(tmp_path / "v")])
    assert result.exit_code == 2
    assert "size" in result.output and not (tmp_path / "v").exists()


def test_cli_reads_a_config_file_and_options_override_it(tmp_path, corpus_file):
    config = tmp_path / "vocab.yaml"
    config.write_text("size: 300\nmin_char_count: 1\n", encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "v.txt"
    result = runner.invoke(app, ["vocab", "build", "-c", str(corpus_file), "--config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "☃" in load_vocab(out).tokens  # min_char_count 1 from the file
    result = runner.invoke(app, ["vocab", "build", "-c", str(corpus_file), "--config", str(config), "--size", "40", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(load_vocab(out).tokens) == 40
    config.write_text("size: 300\nmin_char_cont: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["vocab", "build", "-c", str(corpus_file), "--config", str(config), "-o", str(out)])
    assert result.exit_code == 2 and "min_char_cont" in result.output


def test_cli_needs_a_size(tmp_path, corpus_file):
    result = CliRunner().invoke(app, ["vocab", "build", "-c", str(corpus_file), "-o", str(tmp_path / "v.txt")])
    assert result.exit_code == 2 and "--size" in result.output


def test_progress_reports_both_passes_to_their_ends():
    calls: list[tuple[str, int, int]] = []
    tokens, report = build_vocab([SAMPLE_RAW], VocabBuildConfig(size=1024, min_char_count=1),
                                 progress=lambda phase, texts, chars: calls.append((phase, texts, chars)))
    phases = [phase for phase, _, _ in calls]
    assert phases[0] == "counting characters" and phases[-1] == "learning pieces"
    ends = {phase: (texts, chars) for phase, texts, chars in calls}  # the last call of each pass
    assert ends["counting characters"] == ends["learning pieces"]
    assert ends["counting characters"][1] == report.chars_read > 0
