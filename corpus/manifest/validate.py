"""Checks a manifest the way training would find it broken, listing every problem at once.

Schema, unique identities, weights > 0, dataset folders and their `meta.bin` (and the data
files it lists), recorded `nlines` against `meta.bin`, and transforms: a `transform.py` must
parse and define `transform(data, num_sample, r)` (checked with `ast` first), and `$field`
mappings must follow CPM-Bee's rules (string leaves, as many `*` on each side, no `*` for
constants). A `transform.py` of a dataset marked `escaped` that passes those checks is then
run on a few of its records holding `<<` (escape_check.py): one that escapes a second time is
a problem, shown with a before/after record. That runs the script, as training would:
validate only manifests whose transforms you would train with.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from corpus.dataset import DatasetCorrupt, read_meta
from corpus.manifest.escape_check import check_dataset_transform
from corpus.manifest.lines import resolve_dataset_path, sampling_nlines
from corpus.manifest.transform_script import TransformScript, TransformScriptError
from schemas import DatasetEntry, SchemaError, validate_data
from schemas.loading import parse_text

_TRANSFORM_ARGS = 3  # CPM-Bee calls transform(data, num_sample, r)


def validate_manifest(path: str | os.PathLike) -> list[str]:
    """Every problem of the manifest at `path`, each as `FILE: [index] identity: field: message`.

    Returns an empty list for a manifest training can use. Raises nothing: an unreadable or
    unparsable file is reported as a problem too.
    """
    path = Path(path)
    try:
        data = parse_text(path.read_text(encoding="utf-8"), str(path))
    except OSError as error:
        return [f"{path}: cannot read: {error.strerror}"]
    except UnicodeDecodeError as error:
        return [f"{path}: not UTF-8 text: {error.reason} at byte {error.start}"]
    except SchemaError as error:
        return str(error).splitlines()
    if not isinstance(data, list):
        return [f"{path}: (top level): must be a JSON list of datasets (got {type(data).__name__})"]
    if not data:
        return [f"{path}: (top level): no datasets: training needs at least one"]

    problems: list[str] = []
    base_dir = path.resolve().parent
    seen: dict[str, int] = {}
    nlines_known: dict[str, int | None] = {}
    for index, item in enumerate(data):
        try:
            entry = validate_data(DatasetEntry, item, f"{path}: [{index}]")
        except SchemaError as error:
            problems.extend(str(error).splitlines())
            continue
        where = f"{path}: [{index}] {entry.identity}"
        if entry.identity in seen:
            problems.append(f"{where}: identity also used by entry [{seen[entry.identity]}] (task_name.dataset_name must be unique)")
        seen.setdefault(entry.identity, index)
        if entry.weight <= 0:
            problems.append(f"{where}: weight: must be > 0 (got {entry.weight:g}; a dataset of weight 0 is never sampled: remove it)")
        dataset_problems, nlines = _check_dataset(entry, base_dir)
        problems.extend(f"{where}: {problem}" for problem in dataset_problems)
        nlines_known[entry.identity] = nlines if entry.weight > 0 else 0
        transform_problems = _check_transforms(entry.transforms, base_dir)
        problems.extend(f"{where}: {problem}" for problem in transform_problems)
        if not transform_problems and not dataset_problems and nlines is not None:
            problems.extend(f"{where}: {problem}" for problem in _check_escaping(entry, base_dir))
    if nlines_known and all(n is not None for n in nlines_known.values()) and sum(nlines_known.values()) == 0:
        problems.append(f"{path}: (top level): weight × nlines sums to 0: an empty mixture (CPM-Bee stops with 'Empty datasets')")
    return problems


def transform_scripts(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(identity, script path) of every entry whose `transforms` names a Python file. Training
    imports and runs these (CPM-Bee's design): whoever approves the manifest approves that code.
    Entries that do not parse are left out (`validate_manifest` reports them)."""
    path = Path(path)
    try:
        data = parse_text(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, SchemaError):
        return []
    scripts = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and isinstance(item.get("transforms"), str) and item["transforms"]:
            identity = f"{item.get('task_name')}.{item.get('dataset_name')}"
            scripts.append((identity, resolve_dataset_path(item["transforms"], path.resolve().parent)))
    return scripts


def _check_dataset(entry: DatasetEntry, base_dir: Path) -> tuple[list[str], int | None]:
    """Problems of the dataset folder, and its line count when `meta.bin` could be read."""
    folder = resolve_dataset_path(entry.path, base_dir)
    if not folder.is_dir():
        return [f"path: dataset folder {folder} does not exist"], entry.nlines
    try:
        infos = read_meta(folder)
    except FileNotFoundError:
        return [f"path: {folder} has no meta.bin"], entry.nlines
    except (DatasetCorrupt, OSError, UnicodeDecodeError) as error:
        return [f"path: meta.bin unreadable: {error}"], entry.nlines
    problems = [
        f"path: data file {info.file_name} listed in meta.bin is missing from {folder}"
        for info in infos
        if not (folder / info.file_name).is_file()
    ]
    nlines = sampling_nlines(infos)
    if entry.nlines is not None and entry.nlines != nlines:
        problems.append(f"nlines: manifest says {entry.nlines:,} but meta.bin says {nlines:,} (stale stats: rebuild the entry)")
    return problems, nlines


def _check_escaping(entry: DatasetEntry, base_dir: Path) -> list[str]:
    """A `transform.py` must not escape a dataset stored escaped a second time (escape_check.py)."""
    if not entry.escaped or not isinstance(entry.transforms, str):
        return []
    try:
        function = TransformScript(resolve_dataset_path(entry.transforms, base_dir), entry.identity).function()
        problem = check_dataset_transform(entry.identity, str(resolve_dataset_path(entry.path, base_dir)), function)
    except TransformScriptError as error:
        return [f"transforms: {error}"]
    except (DatasetCorrupt, OSError) as error:
        return [f"path: records unreadable: {error}"]
    return [f"transforms: {problem}"] if problem else []


def _check_transforms(transforms: str | list[dict[str, Any]], base_dir: Path) -> list[str]:
    if isinstance(transforms, str):
        return _check_transform_script(resolve_dataset_path(transforms, base_dir))
    problems = []
    for index, mapping in enumerate(transforms):
        problems.extend(f"transforms[{index}]{problem}" for problem in _check_mapping(mapping, ""))
    return problems


def _check_transform_script(script: Path) -> list[str]:
    """`transform.py` must parse and define `transform(data, num_sample, r)` at top level."""
    try:
        source = script.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [f"transforms: script {script} does not exist"]
    except (OSError, UnicodeDecodeError) as error:
        return [f"transforms: script {script} unreadable: {error}"]
    try:
        tree = ast.parse(source, filename=str(script))
    except SyntaxError as error:
        return [f"transforms: {script}:{error.lineno}: syntax error: {error.msg}"]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "transform":
            return _check_transform_signature(node, script)
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "transform":
            return [f"transforms: {script}:{node.lineno}: transform is async; CPM-Bee calls it as a plain function"]
        if _binds_transform(node):
            return []  # assigned or imported: the signature cannot be checked without running it
    return [f"transforms: {script} defines no top-level function transform(data, num_sample, r)"]


def _check_transform_signature(node: ast.FunctionDef, script: Path) -> list[str]:
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    required_keyword = [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults) if default is None]
    if (positional < _TRANSFORM_ARGS and args.vararg is None) or required > _TRANSFORM_ARGS or required_keyword:
        return [
            f"transforms: {script}:{node.lineno}: transform takes ({ast.unparse(args)}); "
            f"CPM-Bee calls transform(data, num_sample, r)"
        ]
    return []


def _binds_transform(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == "transform" for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == "transform"
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name) == "transform" for alias in node.names)
    return False


def _check_mapping(mapping: Any, prefix: str) -> list[str]:
    """CPM-Bee's mapping rules: nested dicts whose leaves are strings; a `$a.*.b` source needs as
    many `*` in its target; a constant target may not contain `*`."""
    if not isinstance(mapping, dict):
        return [f"{prefix}: must be a mapping of target field -> '$source' or constant (got {type(mapping).__name__})"]
    problems = []
    for key, value in mapping.items():
        target = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            problems.extend(_check_mapping(value, target))
        elif not isinstance(value, str):
            problems.append(f".{target}: must be a '$source' path or a constant string (got {value!r})")
        elif value.startswith("$"):
            stars_source, stars_target = value[1:].split(".").count("*"), target.split(".").count("*")
            if stars_source != stars_target:
                problems.append(f".{target}: {value!r} has {stars_source} '*' but the target has {stars_target}: they must match")
        elif "*" in target.split("."):
            problems.append(f".{target}: a constant value cannot have '*' in its target")
    return problems
