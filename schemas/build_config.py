"""`BuildConfig`: everything one corpus build needs — inputs, outputs, the manifest entry, and
the settings of every pipeline stage (each stage's settings are a small model of their own).

Loaded from YAML or JSON (`schemas.load_file(BuildConfig, "build.yaml")`); the JSON Schema in
schemas/json/build_config.schema.json is generated from it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator, model_validator

from schemas.fileinfo import DEFAULT_BLOCK_SIZE

# Upper bounds: a value past them is a typo (`1e12`) that would end in a MemoryError mid-build.
MAX_BLOCK_SIZE = 1 << 30  # 1 GiB: a writer and each reader hold one block in memory
MAX_LINE_BYTES = 1 << 30
MAX_NUM_PERM = 1024  # 4 KiB of signature per record; FineWeb uses 112
MAX_CHARS = 100_000_000


# The per-file stages' order and what their checkpoints hold; a change invalidates checkpoints.
PER_FILE_CHAIN = "read,clean,language,pii,quality,fingerprint(document),split"


class _StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadConfig(_StageConfig):
    """Stage 1: which files are read and how a line becomes a sample."""

    txt_suffixes: list[str] = Field(default=[".txt"], description="File endings read as one sample per line.")
    json_suffixes: list[str] = Field(default=[".json", ".jsonl"], description="File endings read as one JSON object per line.")
    max_line_bytes: int = Field(default=8 << 20, gt=0, le=MAX_LINE_BYTES, description="Longer lines are rejected (`line_too_long`) without being held in memory.")
    skip_hidden: bool = Field(default=True, description="Ignore files and folders whose name starts with a dot (listed in the report's `skipped_files`).")
    follow_symlinks: bool = Field(default=True, description="Read through symlinked files and folders of a local input root (a link back to a folder already being walked is skipped as a loop); false lists them as skipped.")
    split_bytes: int = Field(default=64 << 20, ge=1 << 10, description="Input files larger than this are cut at line ends into byte ranges of about this size, read by different workers; a `.zst` file only at its frame starts (one of a single frame, and a `.gz` file, are read whole, and the build says so). Does not change the output.")
    text_fields: list[str] = Field(
        default=["text", "content"], min_length=1,
        description="A JSON record without `<ans>` whose first present field of these is a string is a text document "
                    "(datatrove's `text_key`); its other fields are kept as metadata.",
    )
    metadata_fields: list[str] = Field(
        default=["id", "source", "url", "meta", "metadata"],
        description="Top-level fields of a structured sample that exact and near dedupe leave out (not content).",
    )


class CleanConfig(_StageConfig):
    """Stage 2: repair and normalise text (string values of json samples too)."""

    fix_text: bool = Field(default=True, description="Repair mojibake and bad escapes with ftfy.")
    normalization: Literal["NFC", "NFKC", "none"] = Field(default="NFC", description="Unicode normal form.")
    remove_control_chars: bool = Field(default=True, description="Drop C0/C1 control and format characters except newline and tab.")
    html_to_text: bool = Field(default=False, description="Turn HTML-ish documents into plain text (tags dropped, block tags become newlines).")
    tidy_whitespace: bool = Field(default=True, description="Collapse runs of spaces, strip line ends, at most one blank line in a row.")


class SplitConfig(_StageConfig):
    """Stage 3: split long txt samples at paragraph, then sentence boundaries (CPM-Bee defaults)."""

    min_length: int = Field(default=100, ge=0, le=MAX_CHARS, description="Pieces (and whole txt samples) shorter than this, in characters, are dropped.")
    max_length: int = Field(default=2000, gt=0, le=MAX_CHARS, description="txt samples longer than this, in characters, are split.")

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> SplitConfig:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is above max_length ({self.max_length})")
        return self


class QualityConfig(_StageConfig):
    """Stage 4: heuristic filters (Gopher / C4 / FineWeb, character-based for CJK). `null` turns a filter off.

    "Tokens" are words for Latin text and single characters for CJK text.
    """

    apply_to_json: bool = Field(default=False, description="Also filter structured (json) samples.")
    min_tokens: int | None = Field(default=20, description="Fewest tokens (Gopher: 50 words).")
    max_tokens: int | None = Field(default=100_000, description="Most tokens (Gopher: 100,000 words).")
    min_mean_word_length: float | None = Field(default=2.0, description="Mean Latin word length floor (Gopher: 3), only with >= 10 Latin words.")
    max_mean_word_length: float | None = Field(default=12.0, description="Mean Latin word length ceiling (Gopher: 10).")
    max_symbol_ratio: float | None = Field(default=0.1, description="`#` and ellipses per token (Gopher: 0.1).")
    max_digit_ratio: float | None = Field(default=0.3, description="Digits per non-space character.")
    min_letter_ratio: float | None = Field(default=0.5, description="Letters (Latin or CJK) per non-space character.")
    max_bullet_lines: float | None = Field(default=0.9, description="Fraction of lines starting with a bullet (Gopher: 0.9).")
    max_ellipsis_lines: float | None = Field(default=0.3, description="Fraction of lines ending with an ellipsis (Gopher: 0.3).")
    max_duplicate_lines: float | None = Field(default=0.3, description="Fraction of lines that repeat an earlier line (Gopher: 0.3).")
    max_duplicate_line_chars: float | None = Field(default=0.2, description="Characters in repeated lines (Gopher: 0.2).")
    max_duplicate_paragraphs: float | None = Field(default=0.3, description="Fraction of paragraphs that repeat (Gopher: 0.3).")
    max_duplicate_paragraph_chars: float | None = Field(default=0.2, description="Characters in repeated paragraphs (Gopher: 0.2).")
    max_top_ngram_chars: dict[int, float] = Field(
        default={2: 0.2, 3: 0.18, 4: 0.16},
        description="n -> most characters covered by the most frequent token n-gram (Gopher).",
    )
    max_duplicate_ngram_chars: dict[int, float] = Field(
        default={5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> most characters covered by token n-grams seen more than once (Gopher).",
    )
    max_short_lines: float | None = Field(default=None, description="Fraction of lines under 4 tokens (FineWeb: 0.67); off by default.")
    min_terminal_punctuation_lines: float | None = Field(default=None, description="Fraction of lines ending in . ! ? 。！？ (FineWeb: 0.12); off by default.")
    min_target_script_ratio: float | None = Field(default=0.8, description="Latin + CJK letters per letter (the CJK/Latin mix check).")


PII_TYPES = ("email", "phone", "id_number", "bank_card", "ip")
PiiType = Literal["email", "phone", "id_number", "bank_card", "ip"]


class LanguageConfig(_StageConfig):
    """Language identification with cld2 (pycld2): every document gets `language` and
    `language_score`; with `keep` set, documents whose share of text in the kept languages is
    under `min_score` are rejected (`wrong_language`). On by default for a Chinese/English build.
    """

    enabled: bool = Field(default=True, description="Identify every document's language (annotation in the shards and report).")
    keep: list[str] | None = Field(
        default=["zh", "en"],
        description="cld2 language codes to keep (`zh` also keeps `zh-Hant`); null: annotate only, reject nothing.")
    min_score: float = Field(default=0.5, ge=0, le=1, description="Least share of the identified text in kept languages (a Chinese text with English terms counts both shares, so it is kept).")
    reject_unknown: bool = Field(default=False, description="Also reject text cld2 identifies no language in (labelled `un`: numbers, symbols, a few words); off: the quality filter judges it.")
    apply_to_json: bool = Field(default=False, description="Also reject structured (json) samples (they are always annotated).")


class PiiConfig(_StageConfig):
    """PII: emails, phone numbers, Chinese resident identity numbers (checksum verified), bank
    card numbers (Luhn verified), IPv4/IPv6 addresses; replaced by typed placeholders or the
    document rejected (`contains_pii`). Off by default: redaction changes text a user may want."""

    enabled: bool = Field(default=False, description="Find PII in every document.")
    action: Literal["redact", "reject"] = Field(default="redact", description="`redact`: replace each match by its placeholder; `reject`: drop the document.")
    types: list[PiiType] = Field(default=list(PII_TYPES), description="Which kinds of PII are looked for.")
    placeholders: dict[PiiType, str] = Field(
        default={"email": "[EMAIL]", "phone": "[PHONE]", "id_number": "[ID_NUMBER]", "bank_card": "[BANK_CARD]", "ip": "[IP]"},
        description="Replacement text per type; never `<` or `>` (CPM-Bee escapes `<` and its special tokens are `<...>`).")

    @model_validator(mode="after")
    def _placeholders_are_plain(self) -> PiiConfig:
        for kind, text in self.placeholders.items():
            if "<" in text or ">" in text or not text:
                raise ValueError(f"pii.placeholders.{kind} = {text!r}: a placeholder must be non-empty and hold no `<` or `>` "
                                 "(CPM-Bee's special tokens are written <...>); use e.g. [EMAIL]")
        return self


class DecontaminationConfig(_StageConfig):
    """Reject written records sharing an n-gram with an evaluation item (`contaminated`). Off
    until `eval_sets` names some: JSONL files, binary dataset folders or mixture manifests."""

    eval_sets: list[str] = Field(default_factory=list, description="Evaluation sets (local paths); empty: no decontamination.")
    ngram: int = Field(default=13, ge=1, le=1000, description="Window size in words of Latin text (GPT-3's 13-gram overlap).")
    cjk_ngram: int = Field(default=20, ge=1, le=1000, description="The same window in CJK characters (about 1.5 per English word).")
    min_tokens: int = Field(default=8, ge=1, le=1000, description="Evaluation texts shorter than a window count whole when they hold at least this many tokens; shorter ones are ignored.")
    template_min_items: int = Field(default=10, ge=2, description="An n-gram shared by this many items of the evaluation sets is a template (e.g. a fixed question) and left out.")


class ExactDedupeConfig(_StageConfig):
    """Stage 5: exact duplicates by hash of the normalised text, global across the build."""

    enabled: bool = True
    lowercase: bool = Field(default=True, description="Hash the lower-cased text.")
    collapse_whitespace: bool = Field(default=True, description="Hash with runs of whitespace as one space.")


class NearDedupeConfig(_StageConfig):
    """Stage 6: MinHash LSH near-duplicates, clustered globally inside the Beam job."""

    enabled: bool = True
    apply_to_json: bool = Field(
        default=False,
        description="Also near-dedupe structured samples (on their content). Off by default: short samples that share "
                    "a template (the same question, most options) look alike without being copies; exact dedupe "
                    "still applies to them.",
    )
    num_perm: int = Field(default=112, gt=0, le=MAX_NUM_PERM, description="MinHash permutations (FineWeb: 14 x 8 = 112).")
    bands: int | None = Field(default=14, gt=0, le=MAX_NUM_PERM, description="LSH bands; null derives bands x rows from `threshold` (datasketch).")
    rows: int | None = Field(default=8, gt=0, le=MAX_NUM_PERM, description="Rows per band.")
    threshold: float = Field(
        default=0.75, gt=0, le=1,
        description="Estimated Jaccard similarity at which two documents are linked as near duplicates (FineWeb's 0.75): "
                    "pairs whose true character 5-gram Jaccard is >= 0.8 are found despite the estimate's noise "
                    "(about +-0.04 at 112 permutations).",
    )
    ngram: int = Field(default=5, gt=0, le=64, description="Shingle size: characters (`chars`), else tokens (words for Latin text, characters or jieba words for CJK).")
    shingles: Literal["chars", "words_and_chars", "jieba"] = Field(
        default="chars",
        description="`chars`: character n-grams of the lower-cased, whitespace-collapsed text (Latin and CJK alike: the "
                    "estimate tracks character n-gram Jaccard); `words_and_chars`: word n-grams for Latin, character "
                    "n-grams for CJK; `jieba`: jieba words for CJK (needs jieba installed).",
    )
    seed: int = Field(default=1, description="MinHash seed.")
    verify: bool = Field(default=True, description="Keep a band collision only when the signatures' estimated Jaccard reaches `threshold`.")
    cc_rounds: int = Field(default=8, gt=0, le=64, description="Large-star/small-star rounds of the connected-components step; the build fails (never guesses) if they do not converge.")

    @model_validator(mode="after")
    def _bands_fit(self) -> NearDedupeConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (then they derive from threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands} x {self.rows}) exceeds num_perm ({self.num_perm})")
        return self


class EscapeConfig(_StageConfig):
    """Stage 7: the escape state of what is stored (`<` written `<<`, CPM-Bee's rule) and the
    validation of structured samples."""

    input: Literal["escaped", "raw"] = Field(
        default="escaped",
        description="Structured samples (`<ans>`) as given: `escaped` (CPM-Bee's documented format: every literal `<` "
                    "already written `<<`; validated, never escaped again) or `raw` (escaped here).",
    )
    documents: Literal["build", "transform"] = Field(
        default="build",
        description="Text documents (txt lines, JSON records with a text field) are escaped once at build time "
                    "(`build`, the dataset is marked `escaped`), or stored unescaped for CPM-Bee transforms that "
                    "escape (`transform`: the whole dataset is stored unescaped and marked `escaped: false`).",
    )
    require_ans: bool | None = Field(
        default=None,
        description="A JSON record with neither a text field nor `<ans>`: kept unchanged (false) or rejected "
                    "(true, `not_a_sample`); null: kept exactly when the build declares `transforms`.",
    )
    special_tokens: list[str] = Field(
        default=[r"ans", r"option_\d+", r"mask_\d+", r"root", r"s", r"/s", r"unk", r"mask"],
        description="Regexes of `<name>` tokens kept unescaped; keys of the sample that look like `<name>` are kept too.",
    )


class WriteConfig(_StageConfig):
    """Stage 8: the binary dataset's layout."""

    block_size: int = Field(default=DEFAULT_BLOCK_SIZE, gt=6, le=MAX_BLOCK_SIZE, description="Bytes per block of the binary dataset.")
    serializer: Literal["pickle", "json"] = Field(default="pickle", description="Record payload encoding.")
    reject_text_chars: int = Field(default=2000, ge=0, le=MAX_CHARS, description="Characters of a rejected text kept in the rejects table.")


# Settings that change where or how a build runs, never what it writes: left out of its hashes.
# (`read.split_bytes` decides how input files are cut for the workers; each range's checkpoint
# marker names its own byte range.)
_NOT_CONTENT: dict = {"output": True, "work_dir": True, "manifest": True, "read": {"split_bytes"}}


class BuildConfig(BaseModel):
    """One corpus build: raw files in `input`, a finished dataset in `output`, an entry in `manifest`."""

    model_config = ConfigDict(extra="forbid")

    input: list[str] = Field(min_length=1, description="Input roots (folders, read recursively; any Beam filesystem URL).")
    output: str = Field(min_length=1, description="Output folder (replaced atomically when the build finishes).")
    work_dir: str | None = Field(default=None, description="Checkpoints of finished input files; default `<output>.work`.")
    dataset_name: str = Field(min_length=1)
    task_name: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    incontext_weight: list[FiniteFloat] = Field(default_factory=lambda: [1.0])
    transforms: str | list[dict[str, Any]] = Field(default_factory=list)
    manifest: str | None = Field(default=None, description="Mixture manifest to upsert; default `datasets.json` beside `output`.")
    read: ReadConfig = Field(default_factory=ReadConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    exact_dedupe: ExactDedupeConfig = Field(default_factory=ExactDedupeConfig)
    near_dedupe: NearDedupeConfig = Field(default_factory=NearDedupeConfig)
    decontamination: DecontaminationConfig = Field(default_factory=DecontaminationConfig)
    escape: EscapeConfig = Field(default_factory=EscapeConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)

    @field_validator("input", mode="before")
    @classmethod
    def _one_input_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def dataset_escaped(self) -> bool:
        """What the dataset holds: `<` escaped as `<<` everywhere (the `escaped` flag of meta.bin and the manifest)."""
        return self.escape.documents == "build"

    @property
    def keeps_records_without_ans(self) -> bool:
        """Whether a JSON record with neither a text field nor `<ans>` is kept (for transforms to turn into a sample)."""
        if self.escape.require_ans is not None:
            return not self.escape.require_ans
        return bool(self.transforms)

    @property
    def resolved_work_dir(self) -> str:
        return self.work_dir or self.output.rstrip("/") + ".work"

    def fingerprint(self) -> str:
        """sha256 of what decides the content: the build-config hash of the manifest entry.

        Where things are written (`output`, `work_dir`, `manifest`) is left out, so the same
        build in another folder has the same hash (and byte-identical files).
        """
        return hashlib.sha256(self.model_dump_json(exclude=_NOT_CONTENT).encode()).hexdigest()

    def prepare_fingerprint(self) -> str:
        """sha256 of the settings of the per-file stages (read .. MinHash signature), and of how
        much text their rejects keep (they are checkpointed too).

        A checkpointed input file is reused only when this and the file itself are unchanged.
        """
        parts = [self.read, self.clean, self.split, self.quality, self.exact_dedupe, self.language, self.pii]
        signature = self.near_dedupe.model_dump(include={"num_perm", "ngram", "shingles", "seed", "enabled", "apply_to_json"})
        text = "|".join(part.model_dump_json(exclude=_NOT_CONTENT.get(name, set()))
                        for name, part in zip(("read", "clean", "split", "quality", "exact_dedupe", "language", "pii"), parts))
        text += repr(sorted(signature.items()))
        text += f"|reject_text_chars={self.write.reject_text_chars}|keeps_records_without_ans={self.keeps_records_without_ans}"
        text += f"|chain={PER_FILE_CHAIN}"
        return hashlib.sha256(text.encode()).hexdigest()
