"""A CPM-Bee `transform.py`, loaded from a dataset's manifest entry (`transforms: path`).

Shared by the trainer (trainer/transforms.py applies it to records) and `bee manifest
validate` (escape_check.py runs it on a few records), so it lives beside the manifest.
"""

from __future__ import annotations

import os
import random
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus.atomic_file import file_signature


class TransformScriptError(RuntimeError):
    """A `transform.py` that cannot be loaded or defines no `transform` function."""


class TransformScript:
    """A `transform.py`, loaded on first use and again whenever the file changes.

    The source is compiled directly rather than imported: Python's bytecode cache keys on
    whole-second mtimes and sizes, so a quick same-size edit could run the old script, and
    a dataset folder should not grow a `__pycache__`.
    """

    def __init__(self, path: str | os.PathLike, module_name: str) -> None:
        self.path = Path(path)
        self.module_name = "bee_transforms." + re.sub(r"\W", "_", module_name)
        self._signature: tuple[int, int, int] | None = None
        self._function: Callable[[Any, int, random.Random], Any] | None = None

    def function(self) -> Callable[[Any, int, random.Random], Any]:
        """The script's `transform`, reloaded if the file changed. Raises TransformScriptError."""
        try:
            signature = file_signature(self.path)
            if self._function is not None and signature == self._signature:
                return self._function
            source = self.path.read_bytes()
        except OSError as error:
            raise TransformScriptError(f"{self.path}: transform script not readable: {error}") from None
        module = types.ModuleType(self.module_name)
        module.__file__ = str(self.path)
        sys.modules[self.module_name] = module  # for code in the script that looks itself up
        try:
            exec(compile(source, str(self.path), "exec"), module.__dict__)
        except Exception as error:  # the user's script: report any failure with its path
            raise TransformScriptError(f"{self.path}: import failed: {error!r}") from error
        function = getattr(module, "transform", None)
        if not callable(function):
            raise TransformScriptError(f"{self.path}: defines no function transform(data, num_sample, r)")
        self._function, self._signature = function, signature
        return function
