"""Reading schema-checked files: errors name the file, the field and what was expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class SchemaError(ValueError):
    """A file that does not match its schema. `str()` lists every problem as `file: field: message`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def _field_path(location: tuple) -> str:
    parts = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: `field: message (got value)`."""
    lines = []
    for problem in error.errors(include_url=False):
        location = tuple(part for part in problem["loc"] if part != "root")
        got = problem.get("input")
        shown = json.dumps(got, ensure_ascii=False, default=str) if not isinstance(got, dict) else "{...}"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"{_field_path(location)}: {problem['msg']} (got {shown})")
    return lines


def validate_data(model: type[M], data: object, source: str) -> M:
    """Validate already-parsed data; `source` names where it came from (a path, `meta.bin:3`)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SchemaError(source, describe_validation_error(error)) from None


def parse_text(text: str, source: str) -> object:
    """Parse JSON, or YAML when `source` ends in .yaml/.yml; syntax errors name the line."""
    try:
        if source.endswith((".yaml", ".yml")):
            return yaml.safe_load(text)
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(source, [f"line {error.lineno} column {error.colno}: invalid JSON: {error.msg}"]) from None
    except yaml.YAMLError as error:
        raise SchemaError(source, [f"invalid YAML: {error}"]) from None


def parse_file(path: str | Path) -> object:
    """Read and parse a JSON or YAML file; raises SchemaError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SchemaError(str(path), [f"cannot read: {error.strerror}"]) from None
    return parse_text(text, str(path))


def load_file(model: type[M], path: str | Path) -> M:
    """Read a JSON or YAML file and validate it against `model`."""
    return validate_data(model, parse_file(path), str(path))
