"""The progress bar of `bee corpus build`, read from what the build writes.

Each input file's checkpoint marker in `<work_dir>/prepared/` says the per-file stages (read
to MinHash signature) are done with it and how many records it gave, so the bar counts files,
records and input MB/s without a hook into the Beam job, whichever runner the flags choose.
The global stages, finishing and packing come after the last file (the bar then stays full).
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from corpus.pipeline.checkpoint import marker_matches, prepared_url
from corpus.pipeline.read import InputFile, list_input_files
from corpus.pipeline.shards import MARKER_SUFFIX, read_marker
from schemas import BuildConfig

POLL_SECONDS = 1.0


def _rate(bytes_per_second: float) -> str:
    if bytes_per_second >= 1e5:
        return f"{bytes_per_second / 1e6:.1f} MB/s"
    return f"{bytes_per_second / 1e3:.1f} kB/s"


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
        try:
            files, _ = list_input_files(self.config.input, self.config.read)
        except (OSError, ValueError):
            return self
        if not files:
            return self
        self._progress = Progress(
            TextColumn("[bold]per-file stages"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
            TextColumn("{task.fields[records]:,} records · {task.fields[rate]}"), TimeElapsedColumn(),
            console=self.console,
        )
        task = self._progress.add_task("build", total=len(files), records=0, rate="")
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
        work_dir = self.config.resolved_work_dir
        prepare_hash = self.config.prepare_fingerprint()
        pending = list(files)
        records = 0
        new_bytes = 0
        started = time.monotonic()
        first_poll = True
        while pending:
            still = []
            for file in pending:
                marker = read_marker(prepared_url(work_dir, file.source_path, MARKER_SUFFIX))
                if marker_matches(marker, file, prepare_hash):
                    records += int(marker.get("records", 0))
                    new_bytes += 0 if first_poll else file.size  # files resumed from checkpoints read nothing
                else:
                    still.append(file)
            pending, first_poll = still, False
            seconds = time.monotonic() - started
            rate = _rate(new_bytes / seconds) if seconds > 0 and new_bytes else "input read from checkpoints"
            self._progress.update(task, completed=len(files) - len(pending), records=records, rate=rate)
            if self._stop.wait(self.poll_seconds):
                return
