"""Reading schema-checked files: errors name the file, the field and what was expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
# YAML aliases may repeat a node; past this many nodes once every alias is expanded, a file is
# refused (a 1 KB "billion laughs" file expands to ~10^9 nodes and would hang whatever walks it).
MAX_YAML_NODES = 1_000_000


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


def expanded_node_count(root: yaml.Node, limit: int) -> int:
    """Nodes of a composed YAML document with every alias expanded (shared nodes counted once per
    use), without expanding them; stops past `limit`. Raises ValueError on a recursive alias."""
    counts: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in counts:
            continue
        children = ([child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else
                    list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done:
            active.discard(id(node))
            counts[id(node)] = min(limit + 1, 1 + sum(counts[id(child)] for child in children))
            continue
        if id(node) in active:
            raise ValueError("a recursive alias (a node that contains itself)")
        active.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise ValueError("a recursive alias (a node that contains itself)")
            stack.append((child, False))
    return counts[id(root)]


def _load_yaml(text: str) -> object:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = expanded_node_count(node, MAX_YAML_NODES)
        if nodes > MAX_YAML_NODES:
            raise ValueError(f"its aliases expand to more than {MAX_YAML_NODES:,} nodes (a YAML alias bomb?); "
                             "write the values out or use fewer aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_text(text: str, source: str) -> object:
    """Parse JSON, or YAML when `source` ends in .yaml/.yml; syntax errors name the line.
    YAML aliases that expand past MAX_YAML_NODES nodes and nesting too deep to parse are refused."""
    try:
        if source.endswith((".yaml", ".yml")):
            return _load_yaml(text)
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(source, [f"line {error.lineno} column {error.colno}: invalid JSON: {error.msg}"]) from None
    except yaml.YAMLError as error:
        raise SchemaError(source, [f"invalid YAML: {error}"]) from None
    except ValueError as error:  # alias bomb or recursive alias; a JSON number over Python's digit limit
        raise SchemaError(source, [f"refused: {error}"]) from None
    except RecursionError:
        raise SchemaError(source, ["refused: nested too deeply to parse"]) from None


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
