"""Stage 7, escape and validate: CPM-Bee reads `<` as the start of a special token, so every
literal `<` is written `<<` (its tokenizer's escape). What a build stores has one escape state,
said by the dataset's `escaped` flag (meta.bin extras and the manifest entry):

- `escape.documents: build` (default, `escaped: true`): text documents (txt lines, JSON
  records with a text field) are escaped here, once: `{"text": <escaped text>, **metadata}`
  (string values of the metadata escaped too, since a transform may copy them into a sample).
  Structured samples are stored escaped: `escape.input: escaped` (default, CPM-Bee's
  documented format) samples are validated (every `<` is part of `<<` or opens a kept special
  token) and stored unchanged; a lone `<` rejects the sample (`unescaped_lt`). `escape.input:
  raw` samples are escaped here: keys and string values, except whole `<name>` special tokens
  (`<ans>`, `<option_N>`, `<mask_N>`, and `<name>` keys of the sample itself).
- `escape.documents: transform` (`escaped: false`): nothing is stored escaped, for CPM-Bee
  `transform.py` scripts that escape: documents as read, raw samples as read, escaped samples
  validated and then unescaped (the exact inverse of the escape).

A structured sample (one with `<ans>`) is a tree of objects and strings; a JSON record kept
for the build's transforms (no `<ans>`, no text field) may hold any JSON values (only its
strings are escaped or checked). Every payload must fit in one block of the binary dataset.
The object that goes into the dataset is set as `record.payload`.
"""

from __future__ import annotations

import re
from typing import Any

from corpus.dataset.blockfile import max_payload_size
from corpus.dataset.serializer import get_serializer
from corpus.pipeline.stage import RecordFilter, reject_record
from schemas import Record, Reject
from schemas.build_config import EscapeConfig, WriteConfig
from schemas.special_tokens import TOKEN_NAME, escape_text

STAGE = "escape"


class InvalidSample(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def escape_strings(value: Any) -> Any:
    """Every string inside a JSON value escaped as plain text (keys and other values as they are)."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {key: escape_strings(child) for key, child in value.items()}
    if isinstance(value, list):
        return [escape_strings(child) for child in value]
    return value


def _collect_keys(value, keys: set[str]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            keys.add(key)
            _collect_keys(child, keys)
    elif isinstance(value, list):
        for child in value:
            _collect_keys(child, keys)


class StructuredEscaper:
    """Escapes, checks or unescapes one structured sample, keeping the special tokens it may contain."""

    def __init__(self, config: EscapeConfig):
        self.config = config
        self.known = re.compile("^<(?:" + "|".join(f"(?:{p})" for p in config.special_tokens) + ")>$")

    def _is_special(self, token: str, sample_keys: set[str]) -> bool:
        return bool(self.known.match(token)) or token in sample_keys

    def escape_string(self, text: str, sample_keys: set[str]) -> str:
        """Escape `<` except where it opens a special token of this sample."""
        out: list[str] = []
        last = 0
        for match in TOKEN_NAME.finditer(text):
            if self._is_special(match.group(), sample_keys):
                out.append(escape_text(text[last:match.start()]))
                out.append(match.group())
                last = match.end()
        out.append(escape_text(text[last:]))
        return "".join(out)

    def _scan_escaped(self, text: str, sample_keys: set[str], path: str, unescape: bool) -> str:
        """Check that `text` is escaped (every `<` is half of `<<` or opens a special token);
        return it unescaped (`<<` -> `<`) when `unescape`, else unchanged."""
        out: list[str] = []
        index = 0
        while True:
            found = text.find("<", index)
            if found < 0:
                out.append(text[index:])
                break
            out.append(text[index:found])
            if text.startswith("<<", found):
                out.append("<" if unescape else "<<")
                index = found + 2
                continue
            match = TOKEN_NAME.match(text, found)
            if match is None or not self._is_special(match.group(), sample_keys):
                shown = text[max(0, found - 20):found + 20]
                raise InvalidSample(
                    "unescaped_lt",
                    f"{path or '(top level)'}: a lone `<` at character {found} ({shown!r}); CPM-Bee's format writes a "
                    f"literal `<` as `<<`: escape it, or build samples written unescaped with `escape.input: raw`",
                )
            out.append(match.group())
            index = match.end()
        return "".join(out) if unescape else text

    def _walk(self, value, sample_keys: set[str], path: str, mode: str, strict: bool):
        """`mode`: `escape` (raw input), `check` (escaped input, kept) or `unescape` (escaped input, stored raw)."""
        if isinstance(value, str):
            if mode == "escape":
                return self.escape_string(value, sample_keys)
            return self._scan_escaped(value, sample_keys, path, unescape=mode == "unescape")
        if isinstance(value, dict):
            out = {}
            for key, child in value.items():
                if not self._is_special(key, sample_keys):
                    key_path = f"{path}.{key}" if path else key
                    if mode == "escape":
                        key = escape_text(key)
                    else:
                        key = self._scan_escaped(key, set(), f"{key_path} (key)", unescape=mode == "unescape")
                out[key] = self._walk(child, sample_keys, f"{path}.{key}" if path else key, mode, strict)
            return out
        if not strict:
            if isinstance(value, list):
                return [self._walk(child, sample_keys, f"{path}[{i}]", mode, strict) for i, child in enumerate(value)]
            return value
        raise InvalidSample(
            "non_string_value",
            f"{path or '(top level)'}: a JSON {type(value).__name__}; CPM-Bee samples hold only objects and strings",
        )

    def prepare(self, data: dict, store_escaped: bool = True) -> dict:
        """The sample as stored: escaped (`store_escaped`) or not, from input that is escaped or raw
        (`config.input`). A sample with `<ans>` must be a tree of objects and strings.
        Raises InvalidSample (reasons `unescaped_lt`, `non_string_value`)."""
        keys: set[str] = set()
        _collect_keys(data, keys)
        sample_keys = {key for key in keys if TOKEN_NAME.fullmatch(key)}
        strict = "<ans>" in data
        if self.config.input == "raw":
            mode = "escape" if store_escaped else "check_raw"
        else:
            mode = "check" if store_escaped else "unescape"
        if mode == "check_raw":  # raw in, raw out: only the shape is checked
            self._walk(data, sample_keys, "", "escape", strict)
            return data
        return self._walk(data, sample_keys, "", mode, strict)

    def escape(self, data: dict) -> dict:
        """A raw sample escaped (keys and string values, except special tokens)."""
        keys: set[str] = set()
        _collect_keys(data, keys)
        sample_keys = {key for key in keys if TOKEN_NAME.fullmatch(key)}
        return self._walk(data, sample_keys, "", "escape", "<ans>" in data)


class EscapeSpecialTokens(RecordFilter):
    stage = STAGE

    def __init__(self, config: EscapeConfig, write: WriteConfig | None = None, reject_text_chars: int = 2000):
        self.config = config
        self.write = write or WriteConfig()
        self.reject_text_chars = reject_text_chars

    def setup(self) -> None:
        super().setup()
        self.escaper = StructuredEscaper(self.config)
        self.serializer = get_serializer(self.write.serializer)
        self.max_payload = max_payload_size(self.write.block_size)
        self.store_escaped = self.config.documents == "build"

    def payload(self, record: Record) -> dict[str, Any]:
        """The object the dataset stores for `record`. Raises InvalidSample."""
        if record.kind == "text":
            metadata = record.metadata or {}
            if self.store_escaped:
                return {"text": escape_text(record.text), **escape_strings(metadata)}
            return {"text": record.text, **metadata}
        return self.escaper.prepare(record.data, self.store_escaped)

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        try:
            payload = self.payload(record)
        except InvalidSample as error:
            return None, reject_record(record, STAGE, error.reason, detail=str(error), max_chars=self.reject_text_chars)
        # A record may not cross a block of the binary dataset: catch it here, as a reject.
        size = len(self.serializer.serialize(payload))
        if size > self.max_payload:
            return None, reject_record(record, STAGE, "too_large_for_block", score=size, threshold=self.max_payload,
                                       detail=f"{size}-byte payload, blocks hold {self.max_payload}",
                                       max_chars=self.reject_text_chars)
        return record.model_copy(update={"payload": payload}), None
