"""The output folder of a corpus build: where it may be, when it may be replaced, and the swap.

A build writes `<output>.building/`, then swaps it into place: one atomic exchange of the two
folders where Linux allows it, else two renames through `<output>.old/`. It only ever deletes or replaces a folder that this tool wrote, recognised by
its stamp `build.json` (`"tool": TOOL`): never an input root, a folder holding one or inside
one, nor a non-empty folder without the stamp. A stamped folder is deleted stamp last, so a
deletion cut short still carries the stamp and is finished by the next build. A build
interrupted between or during the renames is completed (or rolled back) by `recover_swap`
at the start of the next one. One build at a time holds `<output>.lock` (`output_lock`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUILD_STAMP = "build.json"
TOOL = "bee-toolchain corpus build"
BUILDING = "building"  # `state` of a staging folder's stamp until the build writes its final one
# Stamps written before the tool name was added: exactly these keys.
_LEGACY_STAMP_KEYS = {"build_hash", "units_in", "extra_pieces", "written", "rejected", "manifest_entry"}


class UnsafeOutput(ValueError):
    """An output this build must not write to or replace; the message says what to do."""


class OutputLocked(RuntimeError):
    """Another build holds the lock of this output."""


def staging_path(output: Path) -> Path:
    return output.with_name(output.name + ".building")


def old_path(output: Path) -> Path:
    return output.with_name(output.name + ".old")


def lock_path(output: Path) -> Path:
    return output.with_name(output.name + ".lock")


def read_stamp(folder: Path) -> dict | None:
    """The content of `folder/build.json` when it is this tool's stamp, else None."""
    try:
        stamp = json.loads((folder / BUILD_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if stamp_is_ours(stamp) else None


def stamp_is_ours(stamp: object) -> bool:
    """True for the parsed content of a stamp this tool wrote."""
    return isinstance(stamp, dict) and (stamp.get("tool") == TOOL or set(stamp) == _LEGACY_STAMP_KEYS)


def is_ours(folder: Path) -> bool:
    """True when `folder` is a real folder (not a link) carrying this tool's stamp."""
    return folder.is_dir() and not folder.is_symlink() and read_stamp(folder) is not None


def is_complete(folder: Path) -> bool:
    """True for a finished build: our stamp with its build hash (a staging folder has `state: building`)."""
    stamp = read_stamp(folder) if folder.is_dir() else None
    return stamp is not None and stamp.get("state") != BUILDING and "build_hash" in stamp


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_output_location(output: str, inputs: list[str], work_dir: str | None = None,
                          manifest: str | None = None) -> None:
    """Refuse an output that is / holds / sits inside an input root (as may not its `.building`
    and `.old` siblings, the work folder and the manifest), or is a file or a non-empty folder
    this tool did not write. Raises UnsafeOutput naming the paths and what to do. A remote output
    (`s3://`, `gs://`, `hdfs://`) is checked by remote_output.py."""
    from corpus.pipeline import remote_output  # imports this module

    if remote_output.is_remote(output):
        remote_output.check_output_location(output, inputs, work_dir, manifest)
        return
    out = Path(output).resolve()
    written = {"output": out, "staging folder": staging_path(out), "old-output folder": old_path(out)}
    for role, path in (("work folder", work_dir), ("manifest", manifest)):
        if path is not None and "://" not in path:
            written[role] = Path(path).resolve()
    for root in inputs:
        if "://" in root:
            continue
        resolved = Path(root).resolve()
        for role, path in written.items():
            if _overlaps(path, resolved):
                where = ("is the input root" if path == resolved else
                         "holds the input root" if path in resolved.parents else "sits inside the input root")
                raise UnsafeOutput(f"{role} {path} {where} {resolved}: a build replaces its output and would "
                                   "delete or read back its own input; choose an output outside every input root")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UnsafeOutput(f"output {out} is a file or a link, not a folder a build wrote: remove it or choose "
                           "another --output")
    if out.is_dir() and not is_ours(out) and any(out.iterdir()):
        raise UnsafeOutput(f"output {out} is a non-empty folder that no corpus build wrote (no {BUILD_STAMP} "
                           "stamp): a build replaces its output, so choose an empty or new folder, or move "
                           "its content away")


def remove_our_folder(folder: Path | str) -> None:
    """Delete a folder this tool wrote, its stamp last (a deletion cut short leaves it recognisable).
    Raises UnsafeOutput for any other folder. A remote URL goes to remote_output.py."""
    from corpus.pipeline import remote_output  # imports this module

    if remote_output.is_remote(str(folder)):
        remote_output.remove_our_folder(str(folder))
        return
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if not is_ours(folder):
        raise UnsafeOutput(f"{folder} was not written by a corpus build (no {BUILD_STAMP} stamp): it is "
                           "left alone; move or delete it yourself, then build again")
    for child in folder.iterdir():
        if child.name == BUILD_STAMP:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (folder / BUILD_STAMP).unlink()
    folder.rmdir()


def new_staging(output: Path) -> Path:
    """An empty `<output>.building/` stamped as ours (a leftover one of ours is removed first)."""
    staging = staging_path(output)
    remove_our_folder(staging)
    staging.mkdir(parents=True)
    write_stamp(staging, {"state": BUILDING})
    return staging


def write_stamp(folder: Path, content: dict) -> None:
    (folder / BUILD_STAMP).write_text(json.dumps({"tool": TOOL, **content}, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")


def recover_swap(output: Path, log=print) -> None:
    """Bring an output left by an interrupted swap back to a consistent state: a finished staging
    folder with no output is moved into place, an output missing with only `.old` is restored,
    and `.old` / `.building` leftovers beside an output are deleted."""
    staging, old = staging_path(output), old_path(output)
    if not output.exists() and not output.is_symlink():
        if is_complete(staging):
            os.replace(staging, output)
            log(f"{output}: finished the swap an interrupted build had started")
        elif is_complete(old):
            os.replace(old, output)
            log(f"{output}: restored the previous build an interrupted swap had moved aside")
    if old.exists() or old.is_symlink():
        remove_our_folder(old)
    if (output.exists() or output.is_symlink()) and (staging.exists() or staging.is_symlink()):
        remove_our_folder(staging)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`). Returns
    False where the OS or filesystem cannot; raises OSError for other failures."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), f"{a} <-> {b}")


def swap_into_place(staging: Path, output: Path, fault=lambda point: None) -> None:
    """Replace `output` (ours, or absent) by `staging`: readers see the old build or the new one.
    Where the OS can, one atomic exchange (the output never goes missing); else two renames
    through `<output>.old`, which `recover_swap` completes after a crash. `fault` is called at
    named points (corpus/faults.py's `fault_point` in a build)."""
    old = old_path(output)
    remove_our_folder(old)
    if is_ours(output) and exchange(staging, output):
        fault("swap_before_cleanup")
        remove_our_folder(staging)  # now the previous build
        return
    if is_ours(output):
        os.replace(output, old)
    elif output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        output.rmdir()
    elif output.exists() or output.is_symlink():
        raise UnsafeOutput(f"output {output} was not written by a corpus build: it is left alone; "
                           f"the new build stays in {staging}")
    fault("swap_between_renames")
    os.replace(staging, output)
    fault("swap_before_cleanup")
    remove_our_folder(old)


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold `<output>.lock` (flock) for the `with` body; raises OutputLocked at once when another
    build holds it."""
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise OutputLocked(f"another build is writing {output} (process {holder} holds {path}): wait for it "
                               "to finish, or stop it, then build again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
