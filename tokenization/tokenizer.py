"""The CPM-Bee tokenizer: same ids, ext tables, decoded text and errors as the reference.

Text syntax (CPM-Bee's): `<<` is a literal `<`; `<name>` is a special token (its id if the
vocabulary has it, otherwise a fresh id in the ext table); any other `<` is an error. Plain
text between special tokens is split by greedy longest match (`longest_match.py`); each run of
characters no token starts with becomes one unknown token whose id lives in the ext table.
Ext ids count up from `vocab_size` in order of first appearance, after those of `past_table`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from schemas.special_tokens import SYNTAX, escape_text, is_special, unescape_text
from tokenization.longest_match import CompiledEncoder, Engine, PurePythonMatcher, build_matcher
from tokenization.vocab import Vocab, load_vocab


# Short texts (keys, options, answers) repeat: their parse is kept, up to a bound.
_MAX_CACHED_TEXT = 24
_MAX_CACHED_TEXTS = 100_000


class TokenizeError(ValueError):
    """Text that breaks the special-token syntax; `pos` is the character index at fault."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


def _raise_syntax_error(text: str, i: int) -> None:
    """Say what is wrong with the `<` at i that opens neither `<<` nor a special token."""
    if i + 1 == len(text):
        raise TokenizeError(f"unexpected end of text after `<` at pos {i} (write `<<` for a literal `<`)", i)
    close = text.find(">", i + 2)
    inner = text.find("<", i + 2, close if close >= 0 else len(text))
    if inner >= 0:
        raise TokenizeError(
            f"invalid special token at pos {inner}: `<` inside the special token opened at pos {i}", inner
        )
    raise TokenizeError(f"unexpected end of text: special token opened at pos {i} is never closed by `>`", i)


class CPMBeeTokenizer:
    """CPM-Bee's tokenizer over a vocabulary file in CPM-Bee's format.

    Attributes: vocab_path, vocab_fingerprint (sha256 of the file), encoder (token -> id, with
    "\\n" and " " in place of `</n>` and `</_>`), decoder (id -> token).
    """

    unk_token = "<unk>"
    mask_token = "<mask>"
    bos_token = "<s>"
    eos_token = "</s>"

    def __init__(self, vocab_path: str | Path, engine: Engine = "auto") -> None:
        """Takes: path to the vocabulary; engine for plain text ("auto": compiled when built,
        else pure Python; see longest_match.py). Raises: VocabError, OSError (see `load_vocab`).
        """
        self._setup(load_vocab(vocab_path), engine)

    def _setup(self, vocab: Vocab, engine: Engine) -> None:
        self._vocab = vocab
        self._requested_engine = engine
        self.vocab_path = vocab.path
        self.vocab_fingerprint = vocab.fingerprint
        self.encoder: dict[str, int] = {t: i for i, t in enumerate(vocab.tokens)}
        self.decoder: dict[int, str] = dict(enumerate(vocab.tokens))
        self._special_tokens = {t: i for t, i in self.encoder.items() if is_special(t)}
        matcher = build_matcher(
            {t: i for t, i in self.encoder.items() if t not in self._special_tokens}, engine
        )
        self._segment = matcher.segment
        self._plain_ids = matcher.plain_ids
        self._parsed: dict[str, tuple[tuple[int, ...], tuple[tuple[int, str], ...]]] = {}
        self.engine = "python" if isinstance(matcher, PurePythonMatcher) else "c"
        if self.engine == "c":
            # The compiled engine does all of `encode` in one C call (same results and errors
            # as the method below; tests compare the two). Bound on the instance, so a call
            # costs no Python frame: on a short text (a key or value of a sample) the per-call
            # overhead was most of the time.
            self.encode = CompiledEncoder(matcher, self.encoder, TokenizeError).encode  # type: ignore[method-assign]
        # What decode prints for each id: specials as written, plain tokens escaped.
        self._display = [t if is_special(t) else escape_text(t) for t in vocab.tokens]

    # The compiled matcher cannot be pickled: ship the vocabulary and rebuild (Beam DoFns and
    # data-loader workers pickle the tokenizer).
    def __getstate__(self) -> dict:
        return {"vocab": self._vocab, "engine": self._requested_engine}

    def __setstate__(self, state: dict) -> None:
        self._setup(state["vocab"], state["engine"])

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary; ext ids start here."""
        return len(self.encoder)

    def __len__(self) -> int:
        return len(self.encoder)

    @property
    def eos_id(self) -> int:
        return self.encoder[self.eos_token]

    @property
    def bos_id(self) -> int:
        return self.encoder[self.bos_token]

    @property
    def unk_id(self) -> int:
        return self.encoder[self.unk_token]

    @property
    def mask_id(self) -> int:
        return self.encoder[self.mask_token]

    escape = staticmethod(escape_text)  # plain text made safe to tokenize: every `<` becomes `<<`
    unescape = staticmethod(unescape_text)  # and back: every `<<` becomes `<`

    def split_special(self, text: str) -> list[str]:
        """Split text into alternating plain parts and special tokens (odd indexes).

        Plain parts have `<<` already turned into `<`; they may be empty.
        Raises: TokenizeError for a `<` inside a special token (at that `<`) or text that ends
        inside one or right after a single `<` (at the opening `<`).
        """
        if "<" not in text:
            return [text]
        parts: list[str] = []
        plain: list[str] = []
        pos = 0
        for m in SYNTAX.finditer(text):  # `<<`, a special token, or a bare `<` (an error)
            i = m.start()
            plain.append(text[pos:i])
            pos = m.end()
            if m.group(1):
                plain.append("<")
            elif pos - i > 1:
                parts.append("".join(plain))
                parts.append(m.group())
                plain = []
            else:
                _raise_syntax_error(text, i)
        plain.append(text[pos:])
        parts.append("".join(plain))
        return parts

    def encode(
        self, text: str, past_table: Mapping[int, str] = {}  # noqa: B006 - read only, as in CPM-Bee
    ) -> tuple[list[int], dict[int, str]]:
        """Tokenize text (the pure-Python path; the compiled engine replaces it per instance).

        Takes: text in CPM-Bee syntax; past_table, an ext table (id -> token text) to extend.
        Returns: (ids, ext_table) where ext_table is a new dict: past_table plus new entries.
        Raises: TokenizeError (see `split_special`); TypeError if text is not a str.
        """
        ids = self._plain_ids(text)  # also raises TypeError for a non-str
        if ids is not None:
            return ids, dict(past_table) if past_table else {}
        hit = self._parsed.get(text)
        if hit is None:
            ids, pending = self._parse(text)
            if len(text) <= _MAX_CACHED_TEXT:
                if len(self._parsed) >= _MAX_CACHED_TEXTS:
                    self._parsed.clear()
                self._parsed[text] = (tuple(ids), tuple(pending))
        else:
            ids, pending = list(hit[0]), hit[1]
        ext_table: dict[int, str] = dict(past_table)
        if pending:
            self._assign_ext_ids(ids, pending, past_table, ext_table)
        return ids, ext_table

    def _parse(self, text: str) -> tuple[list[int], list[tuple[int, str]]]:
        """ids with -1 where an ext id goes, and (index, token text) for those, in order."""
        if "<" not in text:
            return self._segment(text)  # the common case: one plain part
        one_special = (
            text[0] == "<" and text[-1] == ">" and len(text) > 2
            and text.count("<") == 1 and text.count(">", 2) == 1
        )
        if one_special:
            # Exactly one special token (`<ans>`, `<option_3>`): common as a key or an answer.
            special = self.encoder.get(text)
            return ([special], []) if special is not None else ([-1], [(0, text)])
        encoder = self.encoder
        segment = self._segment
        ids: list[int] = []
        pending: list[tuple[int, str]] = []
        for k, part in enumerate(self.split_special(text)):
            if k & 1:
                special = encoder.get(part)
                if special is None:
                    pending.append((len(ids), part))
                    special = -1
                ids.append(special)
            elif part:
                part_ids, unknown = segment(part)
                if unknown:
                    base = len(ids)
                    pending.extend((base + i, span) for i, span in unknown)
                ids.extend(part_ids)
        return ids, pending

    def _assign_ext_ids(
        self, ids: list[int], pending: list[tuple[int, str]], past_table: Mapping[int, str],
        ext_table: dict[int, str],
    ) -> None:
        """Fill ids[i] for each (i, text) in pending from the ext table, adding new entries."""
        ext_rev = {v: k for k, v in past_table.items()}
        vocab_size = len(self.encoder)
        for i, token in pending:
            idx = ext_rev.get(token)
            if idx is None:
                # len(ext_rev), not len(ext_table): equal unless past_table repeats a value,
                # where this still matches the reference's numbering.
                idx = len(ext_rev) + vocab_size
                ext_rev[token] = idx
                ext_table[idx] = token
            ids[i] = idx

    def decode(self, ids: Iterable[int], ext_table: Mapping[int, str] | None = None) -> str:
        """Turn ids back into text in CPM-Bee syntax (plain `<` escaped as `<<`).

        Takes: ids (negative ids are skipped, as in the reference); ext_table for ids it made.
        Returns: the text.
        Raises: ValueError naming the position of an id in neither the vocabulary nor ext_table.
        """
        display = self._display
        ext = ext_table or {}
        out: list[str] = []
        append = out.append
        n_vocab = len(display)
        for pos, idx in enumerate(ids):
            if idx in ext:
                append(ext[idx])
            elif 0 <= idx < n_vocab:
                append(display[idx])
            elif idx >= 0:
                raise ValueError(
                    f"id {int(idx)} at position {pos} is neither in the vocabulary "
                    f"(size {n_vocab}) nor in the ext table"
                )
        return "".join(out)
