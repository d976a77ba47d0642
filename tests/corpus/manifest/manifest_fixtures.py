"""Builders shared by the manifest tests (imported by name; pytest puts this folder on sys.path):
tiny datasets on disk and manifest files."""

from __future__ import annotations

import json
from pathlib import Path

from corpus.dataset import write_meta
from schemas import FileInfo

REPO_ROOT = Path(__file__).resolve().parents[3]

# CPM-Bee's own src/datasets.json shape: no stats fields, mapping transforms.
CPM_BEE_MANIFEST = [
    {
        "dataset_name": "pretrain",
        "task_name": "mlm",
        "weight": 1.0,
        "path": "/path/to/dataset",
        "transforms": [
            {"answer": "$answer", "document": "$source"},
            {"answer": "$answer", "query": "$source"},
            {"answer": "$answer", "input": "$source"},
        ],
    }
]


def write_dataset(folder: Path, nlines: list[int], masks: list[bool] | None = None) -> Path:
    """A dataset folder whose meta.bin lists one small data file per count (one block each)."""
    masks = masks or [False] * len(nlines)
    infos = []
    for index, (lines, mask) in enumerate(zip(nlines, masks)):
        name = f"part-{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\0" * 64)
        infos.append(FileInfo(file_name=name, block_begin=index, block_end=index + 1, nbytes=10 * lines,
                              nlines=lines, mask=mask, block_size=64))
    write_meta(folder, infos)
    return folder


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def entry(task: str, name: str, **fields) -> dict:
    """A manifest entry with the path defaulting to the dataset name."""
    return {"dataset_name": name, "task_name": task, "path": fields.pop("path", name), **fields}


def cpm_bee_manifest() -> list[dict]:
    """A fresh copy of CPM_BEE_MANIFEST."""
    return json.loads(json.dumps(CPM_BEE_MANIFEST))


def git_env(home: Path) -> dict[str, str]:
    """An environment that keeps the user's and the system's git config out of a test repo."""
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return env


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` (isolated config) and return its stdout; raises on failure."""
    import subprocess

    result = subprocess.run(["git", *args], cwd=repo, env=git_env(repo.parent), capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def init_repo(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    return repo


def init_repo_with_shipped_attributes(repo: Path) -> Path:
    """A new repo whose first commit is this project's .gitattributes (manifests -> bee's driver)."""
    init_repo(repo)
    (repo / ".gitattributes").write_text((REPO_ROOT / ".gitattributes").read_text())
    git(repo, "add", ".gitattributes")
    return repo


def commit_json(repo: Path, relative: str, data, message: str) -> None:
    write_json(repo / relative, data)
    git(repo, "add", relative)
    git(repo, "commit", "-q", "-m", message)
