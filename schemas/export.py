"""Write (or check) the JSON Schema files in schemas/json/ from the pydantic models.

    python -m schemas.export          # rewrite the files
    python -m schemas.export --check  # exit 1 when a committed file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas import EXPORTED_MODELS

SCHEMA_DIR = Path(__file__).parent / "json"


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, for every exported model."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False) + "\n"
        for name, model in EXPORTED_MODELS.items()
    }


def stale_files(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from what the models generate."""
    stale = []
    for name, text in render_schemas().items():
        path = schema_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        stale = stale_files()
        for name in stale:
            print(f"stale: schemas/json/{name} (run `python -m schemas.export`)")
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in render_schemas().items():
        (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote schemas/json/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
