"""The contracts every stage agrees on: pydantic models, with JSON Schema exported from them."""

from schemas.fileinfo import DEFAULT_BLOCK_SIZE, FileInfo
from schemas.loading import SchemaError, load_file, validate_data
from schemas.manifest import DatasetEntry, Fingerprints, MixtureManifest, Provenance
from schemas.model_config import PRESETS, ModelConfig, preset

# name of the file in schemas/json/ -> model; `python -m schemas.export` writes them.
EXPORTED_MODELS = {
    "file_info": FileInfo,
    "mixture_manifest": MixtureManifest,
    "model_config": ModelConfig,
}

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "EXPORTED_MODELS",
    "PRESETS",
    "DatasetEntry",
    "FileInfo",
    "Fingerprints",
    "MixtureManifest",
    "ModelConfig",
    "Provenance",
    "SchemaError",
    "load_file",
    "preset",
    "validate_data",
]
