"""The progress bar of `bee corpus build` reads the build's checkpoint markers."""

from __future__ import annotations

import io

from rich.console import Console

from corpus.pipeline.progress import BuildProgress
from corpus.pipeline.read import list_input_files


def test_progress_bar_counts_the_files_and_records_the_checkpoints_hold(built):
    config, result = built
    files, _ = list_input_files(config.input, config.read)
    sink = io.StringIO()
    with BuildProgress(config, Console(file=sink, width=200), poll_seconds=0.05):
        pass
    line = sink.getvalue().strip().splitlines()[-1]
    assert f"{len(files)}/{len(files)} files" in line
    assert "records" in line and "checkpoints" in line  # a finished build: nothing left to read
