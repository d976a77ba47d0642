"""Stage 7, escape and validate: CPM-Bee reads `<` as the start of a special token, so every
literal `<` is written as `<<` (its tokenizer's escape). Plain text is escaped whole. In a
structured sample, keys and string values are escaped except whole `<name>` special tokens
(`<ans>`, `<option_N>`, `<mask_N>`, and `<name>` keys of the sample itself, which may also
appear inside values); the sample must be a tree of objects and strings with an `<ans>` key,
and its payload must fit in one block of the binary dataset.
The object that goes into the dataset is set as `record.payload`.
"""

from __future__ import annotations

import re


from corpus.dataset.blockfile import max_payload_size
from corpus.dataset.serializer import get_serializer
from corpus.pipeline.stage import FilterDoFn, reject_record
from schemas import Record, Reject
from schemas.build_config import EscapeConfig, WriteConfig

STAGE = "escape"
_TOKEN_SHAPE = re.compile(r"<[A-Za-z_/][A-Za-z0-9_/]*>")


class InvalidSample(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def escape_text(text: str) -> str:
    """Plain text: every `<` becomes `<<`."""
    return text.replace("<", "<<")


def _collect_keys(value, keys: set[str]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            keys.add(key)
            _collect_keys(child, keys)


class StructuredEscaper:
    """Escapes one structured sample, keeping the special tokens it is allowed to contain."""

    def __init__(self, config: EscapeConfig):
        self.config = config
        self.known = re.compile("^<(?:" + "|".join(f"(?:{p})" for p in config.special_tokens) + ")>$")

    def _is_special(self, token: str, sample_keys: set[str]) -> bool:
        return bool(self.known.match(token)) or token in sample_keys

    def escape_string(self, text: str, sample_keys: set[str]) -> str:
        """Escape `<` except where it opens a special token of this sample."""
        out: list[str] = []
        last = 0
        for match in _TOKEN_SHAPE.finditer(text):
            if self._is_special(match.group(), sample_keys):
                out.append(escape_text(text[last:match.start()]))
                out.append(match.group())
                last = match.end()
        out.append(escape_text(text[last:]))
        return "".join(out)

    def _walk(self, value, sample_keys: set[str], path: str):
        if isinstance(value, str):
            return self.escape_string(value, sample_keys)
        if isinstance(value, dict):
            return {
                (key if self._is_special(key, sample_keys) else escape_text(key)):
                    self._walk(child, sample_keys, f"{path}.{key}")
                for key, child in value.items()
            }
        raise InvalidSample(
            "non_string_value",
            f"{path or '(top level)'}: a JSON {type(value).__name__}; CPM-Bee samples hold only objects and strings",
        )

    def escape(self, data: dict) -> dict:
        """The escaped sample. Raises InvalidSample (reason `missing_ans`, `non_string_value`)."""
        if self.config.require_ans and "<ans>" not in data:
            raise InvalidSample("missing_ans", f"no top-level `<ans>` key (keys: {', '.join(list(data)[:8])})")
        keys: set[str] = set()
        _collect_keys(data, keys)
        sample_keys = {key for key in keys if _TOKEN_SHAPE.fullmatch(key)}
        return self._walk(data, sample_keys, "")


class EscapeSpecialTokensFn(FilterDoFn):
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

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        if record.kind == "text":
            payload = {"text": escape_text(record.text)}
        else:
            try:
                payload = self.escaper.escape(record.data)
            except InvalidSample as error:
                return None, reject_record(record, STAGE, error.reason, detail=str(error), max_chars=self.reject_text_chars)
        # A record may not cross a block of the binary dataset: catch it here, as a reject.
        size = len(self.serializer.serialize(payload))
        if size > self.max_payload:
            return None, reject_record(record, STAGE, "too_large_for_block", score=size, threshold=self.max_payload,
                                       detail=f"{size}-byte payload, blocks hold {self.max_payload}",
                                       max_chars=self.reject_text_chars)
        return record.model_copy(update={"payload": payload}), None
