"""The progress bar of `bee corpus build`, read from what the build writes.

Each input file (or byte range of a big file) gets a checkpoint marker in
`<work_dir>/prepared/` once the per-file stages (read to MinHash signature) are done with it,
holding how many records it gave, so the bar counts files, records and input MB/s without a
hook into the Beam job, whichever runner the flags choose. The global stages, finishing and
packing come after the last file (the bar then stays full).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from corpus.pipeline.file_checkpoints import PREPARED
from corpus.pipeline.parquet_shards import MARKER_SUFFIX, join, list_shards, read_marker
from corpus.pipeline.read import InputFile, list_input_files
from schemas import BuildConfig

POLL_SECONDS = 1.0


def _rate(bytes_per_second: float) -> str:
    if bytes_per_second >= 1e5:
        return f"{bytes_per_second / 1e6:.1f} MB/s"
    return f"{bytes_per_second / 1e3:.1f} kB/s"


def _marker_bytes(marker: dict, file: InputFile) -> int | None:
    """Input bytes a marker of this version of `file` vouches for (all of it, or its range),
    else None. (The build adds a content digest to the fingerprint; the listing has none, so
    name, size and mtime decide here: the bar only counts.)"""
    base = f"{file.source_path}|{file.size}|{file.mtime:.6f}|"
    fingerprint = str(marker.get("file", ""))
    if not fingerprint.startswith(base):
        return None  # a checkpoint of an older version of the file
    fields = fingerprint[len(base):].split("|")  # digest, then for a range: start-end, first line
    if len(fields) == 1:
        return file.size
    start, _, end = fields[1].partition("-")
    return int(end if end != "None" else file.size) - int(start)


class BuildProgress:
    """`with BuildProgress(config, console): build_corpus(config, ...)` shows the bar on
    `console` while the build runs (and nothing when the config's inputs cannot be listed:
    the build itself reports that)."""

    def __init__(self, config: BuildConfig, console: Console, poll_seconds: float = POLL_SECONDS):
        self.config = config
        self.console = console
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Progress | None = None

    def __enter__(self) -> BuildProgress:
        output = Path(self.config.output)
        own = [output, output.with_name(output.name + ".building"), Path(self.config.resolved_work_dir)]
        try:
            files, _ = list_input_files(self.config.input, self.config.read, exclude=[str(p) for p in own])
        except (OSError, ValueError):
            return self
        if not files:
            return self
        self._progress = Progress(
            TextColumn("[bold]per-file stages"), BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[nfiles]} files · {task.fields[records]:,} records · "
                       "{task.fields[rate]}"), TimeElapsedColumn(),
            console=self.console,
        )
        task = self._progress.add_task("build", total=sum(f.size for f in files) or 1, files=0, nfiles=len(files),
                                       records=0, rate="")
        self._progress.start()
        self._thread = threading.Thread(target=self._poll, args=(files, task), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._progress is not None:
            self._progress.stop()

    def _poll(self, files: list[InputFile], task) -> None:
        folder = join(self.config.resolved_work_dir, PREPARED)
        prepare_hash = self.config.prepare_fingerprint()
        by_source = {file.source_path: file for file in files}
        done_bytes: dict[str, int] = {}
        seen: set[str] = set()
        records = new_bytes = 0
        started = time.monotonic()
        first_poll = True
        while True:
            for key, url in list_shards(folder, MARKER_SUFFIX):
                file = by_source.get(key.split("#", 1)[0])
                marker = read_marker(url) if url not in seen and file is not None else None
                if not marker or marker.get("prepare_hash") != prepare_hash:
                    continue
                size = _marker_bytes(marker, file)
                if size is None:
                    continue
                seen.add(url)
                records += int(marker.get("records", 0))
                done_bytes[file.source_path] = done_bytes.get(file.source_path, 0) + size
                new_bytes += 0 if first_poll else size  # what was checkpointed before the build read nothing now
            first_poll = False
            seconds = time.monotonic() - started
            finished = sum(done_bytes.get(f.source_path, 0) >= f.size for f in files)
            rate = _rate(new_bytes / seconds) if seconds > 0 and new_bytes else (
                "input read from checkpoints" if finished == len(files) else "")
            self._progress.update(task, completed=sum(done_bytes.values()), files=finished, records=records, rate=rate)
            if finished == len(files) or self._stop.wait(self.poll_seconds):
                return
