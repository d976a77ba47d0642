"""The output of a corpus build on an object store (`s3://`, `gs://`, `hdfs://`), through
`apache_beam.io.filesystems`: the remote twin of output_folder.py.

An object store has no folders, no atomic rename of a folder and no flock, so the local
guarantees are kept where they can be and replaced by documented rules where they cannot:

- Staging: the Beam job writes its shards to `<output>.building/` (each object is written
  whole: an object store never shows half an object). The binary dataset, the report and
  `build_config.json` need local files: they are written to a local temporary folder and
  uploaded into `<output>.building/`; the stamp `build.json` is uploaded last.
- Publish (`publish`): the output's stamp is first overwritten with `state: building`
  (readers stop trusting it), its other objects are deleted, the staging objects copied in
  (server-side copies) and the final stamp written LAST. The one atomic step is that last
  single-object write: readers must trust an output only when `build.json` is complete
  (`is_complete`). Between the first and last step the output is unpublished (not the old
  build, not the new one): a reader that finds no complete stamp must wait or fail.
- Crash leftovers: a complete `<output>.building/` beside an unpublished output is published
  by `recover` at the start of the next build; any other leftover of ours is deleted.
- One writer: object stores (through Beam) offer no atomic create-if-absent, so
  `<output>.lock` is an advisory lock object (host, pid). A build refuses an output whose lock
  names a live process on this host or any process on another host; a lock left by a dead
  process on this host is taken over. Two builds started on two hosts at the same instant
  can both pass: run one build per output at a time (one writer per output).
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from corpus.pipeline.output_folder import (
    BUILD_STAMP,
    BUILDING,
    TOOL,
    OutputLocked,
    UnsafeOutput,
    stamp_is_ours,
)

CHUNK = 8 << 20


# What to install when Beam has no filesystem for a scheme.
INSTALL_HINTS = {
    "s3": "pip install 'bee-toolchain[s3]' (boto3)",
    "gs": "pip install 'apache-beam[gcp]'",
    "hdfs": "pip install 'apache-beam[hadoop]' (the hdfs client)",
    "file": "write a plain local path instead of file://",
}


def is_remote(path: str) -> bool:
    """True for a URL (`s3://`, `gs://`, `hdfs://`, ...): anything that is not a local path."""
    return "://" in str(path)


def check_filesystem(url: str, role: str = "output") -> None:
    """Raise UnsafeOutput when Beam has no filesystem for `url`'s scheme here, saying what to install."""
    scheme = url.split("://", 1)[0]
    try:
        FileSystems.get_filesystem(url)
    except Exception:  # noqa: BLE001 - ValueError / BeamIOError / ImportError, by scheme
        raise UnsafeOutput(f"{role} {url}: no Beam filesystem for {scheme}:// can be used here; "
                           f"{INSTALL_HINTS.get(scheme, 'use s3://, gs://, hdfs:// or a local folder')}") from None


def _url(path: str) -> str:
    return str(path).rstrip("/")


def staging_url(output: str) -> str:
    return _url(output) + ".building"


def lock_url(output: str) -> str:
    return _url(output) + ".lock"


def join(folder: str, *names: str) -> str:
    return FileSystems.join(_url(folder), *names)


def _write(url: str, data: bytes) -> None:
    with FileSystems.create(url) as stream:
        stream.write(data)


def _read(url: str) -> bytes:
    with FileSystems.open(url) as stream:
        return stream.read()


def list_objects(folder: str) -> list[str]:
    """Every object under `folder/` (recursively), sorted."""
    try:
        matched = FileSystems.match([join(folder, "**")])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError for a prefix with no objects
        return []
    return sorted(meta.path for meta in matched)


def read_stamp(folder: str) -> dict | None:
    """`folder/build.json` when it is this tool's stamp, else None."""
    try:
        stamp = json.loads(_read(join(folder, BUILD_STAMP)))
    except Exception:  # noqa: BLE001 - missing object, no bucket, unreadable JSON: not ours
        return None
    return stamp if stamp_is_ours(stamp) else None


def is_complete(folder: str) -> bool:
    stamp = read_stamp(folder)
    return stamp is not None and stamp.get("state") != BUILDING and "build_hash" in stamp


def write_stamp(folder: str, content: dict) -> None:
    _write(join(folder, BUILD_STAMP), (json.dumps({"tool": TOOL, **content}, indent=2, ensure_ascii=False) + "\n").encode())


def check_output_location(output: str, inputs: list[str], work_dir: str | None, manifest: str | None) -> None:
    """Refuse a remote output that is, holds or sits inside an input root (as may not its
    staging prefix, work folder and manifest), or that holds objects without our stamp."""
    check_filesystem(output)
    for role, path in (("work folder", work_dir), ("manifest", manifest)):
        if path is not None and is_remote(path):
            check_filesystem(path, role)
    written = {"output": _url(output), "staging folder": staging_url(output)}
    for role, path in (("work folder", work_dir), ("manifest", manifest)):
        if path is not None:
            written[role] = _url(path)
    for root in inputs:
        root = _url(root)
        for role, path in written.items():
            if path == root or path.startswith(root + "/") or root.startswith(path + "/"):
                raise UnsafeOutput(f"{role} {path} overlaps the input root {root}: a build replaces its output and "
                                   "would delete or read back its own input; choose an output outside every input root")
    if read_stamp(output) is None and list_objects(output):
        raise UnsafeOutput(f"output {output} holds objects that no corpus build wrote (no {BUILD_STAMP} stamp): "
                           "a build replaces its output, so choose an empty or new prefix, or move the objects away")


def remove_our_folder(folder: str) -> None:
    """Delete every object under `folder/`, the stamp last; refuses a prefix without our stamp."""
    objects = list_objects(folder)
    if not objects:
        return
    if read_stamp(folder) is None:
        raise UnsafeOutput(f"{folder} was not written by a corpus build (no {BUILD_STAMP} stamp): it is left "
                           "alone; move or delete it yourself, then build again")
    stamp = join(folder, BUILD_STAMP)
    rest = [url for url in objects if url != stamp]
    if rest:
        FileSystems.delete(rest)
    FileSystems.delete([stamp])


def new_staging(output: str) -> str:
    """An empty `<output>.building/` stamped as ours (a leftover one of ours is removed first)."""
    staging = staging_url(output)
    remove_our_folder(staging)
    write_stamp(staging, {"state": BUILDING})
    return staging


def upload_folder(local: Path, remote: str) -> None:
    """Copy every file under `local` to the same relative name under `remote/`, except hidden
    ones (local lock files such as `data/.meta.lock`: meaningless on an object store). The stamp
    is not special here: callers upload it last themselves."""
    for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith(".")):
        with open(path, "rb") as source, FileSystems.create(join(remote, *path.relative_to(local).parts)) as target:
            while chunk := source.read(CHUNK):
                target.write(chunk)


def publish(staging: str, output: str, fault=lambda point: None) -> None:
    """Make the complete build in `staging` the output (see the module doc for what is atomic)."""
    if list_objects(output):
        if read_stamp(output) is None:
            raise UnsafeOutput(f"output {output} was not written by a corpus build: it is left alone; "
                               f"the new build stays in {staging}")
        write_stamp(output, {"state": BUILDING})  # unpublished from here until the final stamp
        old = [url for url in list_objects(output) if url != join(output, BUILD_STAMP)]
        if old:
            FileSystems.delete(old)
    fault("swap_between_renames")
    stamp = join(staging, BUILD_STAMP)
    sources = [url for url in list_objects(staging) if url != stamp]
    prefix = _url(staging) + "/"
    if sources:
        FileSystems.copy(sources, [join(output, url[len(prefix):]) for url in sources])
    FileSystems.copy([stamp], [join(output, BUILD_STAMP)])  # the publish point
    fault("swap_before_cleanup")
    remove_our_folder(staging)


def recover(output: str, log=print) -> None:
    """After an interrupted build: publish a complete staging build the output lacks, and delete
    a staging leftover beside a complete output or an incomplete one (its build runs again)."""
    staging = staging_url(output)
    if is_complete(staging) and not is_complete(output):
        publish(staging, output)
        log(f"{output}: finished the publish an interrupted build had started")
    elif list_objects(staging):
        remove_our_folder(staging)


@contextmanager
def output_lock(output: str) -> Iterator[None]:
    """Hold the advisory lock object `<output>.lock` for the `with` body (see the module doc)."""
    url = lock_url(output)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        holder = json.loads(_read(url))
    except Exception:  # noqa: BLE001 - no lock object (or an unreadable one): free
        holder = None
    if isinstance(holder, dict) and holder != me:
        stale = holder.get("host") == me["host"] and not _alive(holder.get("pid"))
        if not stale:
            raise OutputLocked(f"another build is writing {output} (host {holder.get('host')}, process "
                               f"{holder.get('pid')} holds {url}): wait for it to finish; if no build is running, "
                               f"delete {url} and build again")
    _write(url, json.dumps(me).encode())
    try:
        yield
    finally:
        FileSystems.delete([url])


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def relative_to_manifest(target: str, manifest: str) -> str:
    """`target` as the manifest entry's `path`: relative to the manifest's folder when both are on
    the same bucket, else the full URL."""
    t_scheme, _, t_rest = _url(target).partition("://")
    m_scheme, _, m_rest = _url(manifest).partition("://")
    if t_scheme == m_scheme and t_rest.split("/", 1)[0] == m_rest.split("/", 1)[0]:
        return posixpath.relpath(t_rest, posixpath.dirname(m_rest))
    return _url(target)


def read_text(url: str) -> str | None:
    try:
        return _read(url).decode("utf-8")
    except Exception:  # noqa: BLE001 - missing object
        return None


def write_text(url: str, text: str) -> None:
    """One object, written whole (object stores never show half an object)."""
    _write(url, text.encode("utf-8"))


def upsert_manifest(url: str, entry) -> None:
    """Add or replace `entry` in the manifest object at `url` (one writer per manifest: an object
    store gives no lock; the object itself is replaced whole)."""
    from corpus.manifest.store import with_entry
    from schemas import MixtureManifest
    from schemas.loading import parse_text, validate_data

    text = read_text(url)
    manifest = validate_data(MixtureManifest, parse_text(text, url), url) if text is not None else MixtureManifest([])
    write_text(url, with_entry(manifest, entry).to_json())


# --- readers of a remote output ----------------------------------------------------------------

# polars (its Rust object store) reads these schemes itself; hdfs:// it cannot.
POLARS_SCHEMES = ("s3", "gs", "gcs", "az", "abfs")


def use_filesystem_options(pipeline_args: list[str] | None) -> None:
    """Point Beam's filesystems at the endpoint and credentials in `pipeline_args` (the flags a
    build takes: --s3_endpoint_url, --s3_access_key_id, ...); unset ones come from the
    environment (boto3's and Google's usual variables)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(list(pipeline_args or [])))


def polars_storage_options(url: str, pipeline_args: list[str] | None = None) -> dict[str, str]:
    """polars' `storage_options` for reading `url`, taken from the same Beam flags a build uses
    (--s3_endpoint_url, --s3_access_key_id, --s3_secret_access_key, --s3_session_token,
    --s3_region_name); what they leave unset polars takes from the environment (AWS_*,
    GOOGLE_APPLICATION_CREDENTIALS) as boto3 does. Raises UnsafeOutput for a scheme polars
    cannot read (hdfs://)."""
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options

    scheme = url.split("://", 1)[0]
    if scheme not in POLARS_SCHEMES:
        raise UnsafeOutput(f"{url}: polars cannot read {scheme}:// (it reads {', '.join(s + '://' for s in POLARS_SCHEMES)}); "
                           "copy the build's arrow/ and rejects/ folders to a local folder and point at that")
    if scheme != "s3":
        return {}
    s3 = PipelineOptions(list(pipeline_args or [])).view_as(S3Options)
    pairs = {"aws_endpoint_url": s3.s3_endpoint_url, "aws_access_key_id": s3.s3_access_key_id,
             "aws_secret_access_key": s3.s3_secret_access_key, "aws_session_token": s3.s3_session_token,
             "aws_region": s3.s3_region_name}
    return {key: value for key, value in pairs.items() if value}
