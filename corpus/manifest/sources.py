"""Where the two sides of a manifest diff come from: files, or git revisions of a file.

`--rev A..B path` compares the file at A with the file at B, `--rev A...B path` compares it at
the merge base of A and B with B (what a pull request changes), `--rev A path` compares it at A
with the working tree. A file absent at one revision counts as an empty manifest (it was added
or deleted); every other problem raises `SchemaError` naming the file or revision.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from corpus.manifest.store import read_manifest
from schemas import MixtureManifest, SchemaError, validate_data
from schemas.loading import parse_text


@dataclass(frozen=True)
class ManifestSide:
    """One side of a diff: the manifest, a label for humans, and the folder its relative
    dataset paths resolve against."""

    manifest: MixtureManifest
    label: str
    base_dir: Path
    exists: bool = True


def load_file_side(path: str | os.PathLike) -> ManifestSide:
    """The manifest file at `path`; raises SchemaError when it is missing or invalid."""
    path = Path(path)
    return ManifestSide(read_manifest(path), str(path), path.resolve().parent)


def parse_manifest_text(text: str, source: str) -> MixtureManifest:
    """Validate manifest JSON text; `source` names it in errors (`datasets.json @ HEAD~1`)."""
    return validate_data(MixtureManifest, parse_text(text, source), source)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SchemaError("git", ["git is not installed; compare two files instead"]) from None


def _resolve_commit(rev: str, cwd: Path) -> str:
    result = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd)
    if result.returncode != 0:
        raise SchemaError(rev, [f"not a git revision in {cwd} ({result.stderr.strip() or 'unknown revision'})"])
    return result.stdout.strip()


def _merge_base(a: str, b: str, cwd: Path) -> str:
    result = _git(["merge-base", a, b], cwd)
    if result.returncode != 0:
        raise SchemaError(f"{a}...{b}", [f"no merge base ({result.stderr.strip() or 'unrelated histories'})"])
    return result.stdout.strip()


def load_revision_side(rev: str, path: str | os.PathLike, label: str | None = None) -> ManifestSide:
    """The manifest `path` as committed at `rev` (`git show REV:./NAME`, run in the file's folder,
    so the path works from any current directory). Absent at `rev` -> an empty manifest."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        raise SchemaError(str(path), [f"folder {folder} does not exist"])
    commit = _resolve_commit(rev, folder)
    label = label or f"{path} @ {rev}"
    result = _git(["show", f"{commit}:./{path.name}"], folder)
    if result.returncode != 0:
        # Distinguish "not in this commit" (an added/deleted manifest) from real failures.
        listed = _git(["ls-tree", "--name-only", commit, "--", f"./{path.name}"], folder)
        if listed.returncode == 0 and not listed.stdout.strip():
            return ManifestSide(MixtureManifest([]), label, folder, exists=False)
        raise SchemaError(label, [f"git show failed: {result.stderr.strip()}"])
    return ManifestSide(parse_manifest_text(result.stdout, label), label, folder)


def load_worktree_side(path: str | os.PathLike) -> ManifestSide:
    """The working-tree file, or an empty manifest when it was deleted."""
    path = Path(path)
    if not path.exists():
        return ManifestSide(MixtureManifest([]), f"{path} (working tree)", path.resolve().parent, exists=False)
    side = load_file_side(path)
    return ManifestSide(side.manifest, f"{path} (working tree)", side.base_dir)


def load_revision_pair(revisions: str, path: str | os.PathLike) -> tuple[ManifestSide, ManifestSide]:
    """Both sides for `--rev A..B`, `--rev A...B` or `--rev A` (against the working tree).

    Raises SchemaError for a bad revision, an invalid manifest at either side, or a file
    absent on both sides.
    """
    path = Path(path)
    folder = path.resolve().parent
    if "..." in revisions:
        a, b = revisions.split("...", 1)
        a, b = a or "HEAD", b or "HEAD"
        old = load_revision_side(_merge_base(a, b, folder), path, f"{path} @ merge base of {a} and {b}")
        new = load_revision_side(b, path)
    elif ".." in revisions:
        a, b = revisions.split("..", 1)
        old, new = load_revision_side(a or "HEAD", path), load_revision_side(b or "HEAD", path)
    else:
        old, new = load_revision_side(revisions, path), load_worktree_side(path)
    if not old.exists and not new.exists:
        raise SchemaError(str(path), [f"not in git at either side of {revisions!r}"])
    return old, new
