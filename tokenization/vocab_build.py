"""Learn a vocabulary in CPM-Bee's format from a corpus (`bee vocab build`).

The file is one token a line, id = line number, in three parts:
1. CPM-Bee's special tokens, in CPM-Bee's order (the first 11 get the same ids as in the
   official `bee.txt`), plus `<eod>`;
2. single characters seen at least `min_char_count` times, by code point;
3. multi-character pieces learned by HF `tokenizers`' BPE trainer, most frequent merge first.

The BPE trainer only proposes pieces; CPM-Bee's tokenizer segments by greedy longest match over
whatever pieces the file holds. Text is pre-split into runs of letters (CJK runs stay whole, so
pieces such as `学习` are learned), digits, or other symbols, each run with at most one leading
space (English pieces look like ` the`, as in `bee.txt`); newlines split runs and never enter a
piece. `size` is an upper bound: the file has at most `size` tokens, fewer when the corpus has no
more pieces seen `min_piece_count` times. The same corpus and config give the same bytes.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from corpus.atomic_file import write_text_atomically
from schemas.special_tokens import is_special
from tokenization.vocab import NEWLINE_TOKEN, SPACE_TOKEN, file_fingerprint
from tokenization.vocab_corpus import CorpusReadCounts, iter_corpus_texts

# CPM-Bee's own order (bee.txt lines 1-11), then `<eod>` (in bee.txt further down).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>", "<unk>", "<mask>", "<sep>", NEWLINE_TOKEN, SPACE_TOKEN,
    "<s>", "</s>", "<root>", "<ans>", "<option>", "<eod>",
)  # fmt: skip

# Characters a token may never hold: the format is line based (the reader splits on \n and \r),
# and space/newline alone are spelled `</_>`/`</n>`.
_NOT_A_CHAR_TOKEN = frozenset(" \n\r")
# Runs the BPE trainer sees: letters, digits or other symbols, with at most one leading space.
_RUNS = r" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"


class VocabBuildConfig(BaseModel):
    """How `bee vocab build` learns a vocabulary."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(gt=len(SPECIAL_TOKENS), description="Upper bound on the number of tokens (lines) in the vocabulary.")
    min_char_count: int = Field(default=2, ge=1, description="A character seen fewer times is left out (it becomes an unknown token).")
    min_piece_count: int = Field(default=2, ge=2, description="A multi-character piece seen fewer times is not learned.")
    max_piece_chars: int = Field(default=16, ge=2, description="Longest multi-character piece, in characters.")


@dataclass
class VocabBuildReport:
    """What a vocabulary build read and wrote."""

    path: str
    fingerprint: str
    size: int
    nspecial: int
    nchars: int
    npieces: int
    samples_read: int
    chars_read: int
    chars_left_out: int  # distinct characters under the frequency floor
    skipped: dict[str, int] = field(default_factory=dict)  # raw lines not read, by reason


def _count_chars(texts) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    return counts


def choose_chars(char_counts: Counter[str], config: VocabBuildConfig) -> list[str]:
    """The single-character tokens: frequent enough, never space/newline; the most frequent
    when they do not all fit beside the special tokens. Returns them by code point.
    """
    candidates = [(c, n) for c, n in char_counts.items() if n >= config.min_char_count and c not in _NOT_A_CHAR_TOKEN]
    room = config.size - len(SPECIAL_TOKENS)
    if len(candidates) > room:
        candidates = sorted(candidates, key=lambda cn: (-cn[1], cn[0]))[:room]
    return sorted(c for c, _ in candidates)


def learn_pieces(texts, npieces: int, alphabet_size: int, config: VocabBuildConfig) -> list[str]:
    """Up to `npieces` multi-character pieces learned by BPE over `texts`, in merge order.

    Takes: an iterable of texts (read once), how many pieces are wanted, how many distinct
    characters the texts hold (the trainer's vocabulary counts them too), the config.
    Returns: pieces with no newline/carriage return that do not look like `<name>`.
    """
    if npieces <= 0:
        return []
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", behavior="removed"), pre_tokenizers.Split(Regex(_RUNS), behavior="isolated")]
    )
    # Some proposals are filtered out below, so ask for a few more than needed.
    trainer = trainers.BpeTrainer(
        vocab_size=alphabet_size + npieces + npieces // 10 + 64,
        min_frequency=config.min_piece_count,
        max_token_length=config.max_piece_chars,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    learned = tokenizer.get_vocab()
    pieces = [
        piece
        for piece in sorted(learned, key=learned.__getitem__)
        if len(piece) > 1 and "\n" not in piece and "\r" not in piece and not is_special(piece)
    ]
    return pieces[:npieces]


# progress(phase, texts, characters) as a pass starts, after every PROGRESS_EVERY texts, and at its end
VocabProgress = Callable[[str, int, int], None]
PROGRESS_EVERY = 1000
PASSES = ("counting characters", "learning pieces")


def _reported(texts, progress: VocabProgress | None, phase: str):
    """`texts`, telling `progress` how far this pass has read."""
    if progress is None:
        yield from texts
        return
    samples = chars = 0
    progress(phase, 0, 0)
    for text in texts:
        samples += 1
        chars += len(text)
        if samples % PROGRESS_EVERY == 0:
            progress(phase, samples, chars)
        yield text
    progress(phase, samples, chars)


def build_vocab(sources: list[str | os.PathLike], config: VocabBuildConfig,
                progress: VocabProgress | None = None) -> tuple[list[str], VocabBuildReport]:
    """Learn the vocabulary of a corpus (two passes over it: characters, then pieces).

    Takes: corpus sources (dataset folders, raw files or folders; see `vocab_corpus`), the
    config, and an optional `progress(phase, texts, characters)` called as each pass reads.
    Returns: the tokens in id order, as written to the file (`</n>`, `</_>` spelled out), and a
    report (path and fingerprint empty until written).
    Raises: FileNotFoundError / ValueError / DatasetCorrupt for bad sources, ValueError for an
    empty corpus.
    """
    counts = CorpusReadCounts()
    char_counts = _count_chars(_reported(iter_corpus_texts(sources, counts), progress, PASSES[0]))
    if not char_counts:
        raise ValueError(f"no text found in {', '.join(map(str, sources))}")
    chars = choose_chars(char_counts, config)
    npieces = config.size - len(SPECIAL_TOKENS) - len(chars)
    pieces = learn_pieces(_reported(iter_corpus_texts(sources, CorpusReadCounts()), progress, PASSES[1]), npieces,
                          len(char_counts), config)
    tokens = [*SPECIAL_TOKENS, *chars, *pieces]
    report = VocabBuildReport(
        path="", fingerprint="", size=len(tokens), nspecial=len(SPECIAL_TOKENS), nchars=len(chars),
        npieces=len(pieces), samples_read=counts.samples, chars_read=counts.chars,
        chars_left_out=sum(1 for c in char_counts if c not in _NOT_A_CHAR_TOKEN) - len(chars),
        skipped=dict(sorted(counts.skipped.items())),
    )
    return tokens, report


def write_vocab(tokens: list[str], path: str | os.PathLike) -> str:
    """Write tokens one a line (UTF-8, `\\n` endings) atomically. Returns the file's sha256."""
    path = Path(path)
    write_text_atomically(path, "".join(token + "\n" for token in tokens))
    return file_fingerprint(path)


def build_vocab_file(
    sources: list[str | os.PathLike], output: str | os.PathLike, config: VocabBuildConfig,
    progress: VocabProgress | None = None,
) -> VocabBuildReport:
    """Learn a vocabulary from `sources` and write it to `output` (see `build_vocab`).

    Returns: the report, with the written path and its sha256 fingerprint.
    """
    tokens, report = build_vocab(sources, config, progress)
    report.fingerprint = write_vocab(tokens, output)
    report.path = str(output)
    return report
