"""The contracts every stage agrees on: pydantic models, with JSON Schema exported from them."""

from schemas.build_config import BuildConfig
from schemas.build_plan import BuildPlan
from schemas.fileinfo import DEFAULT_BLOCK_SIZE, FileInfo
from schemas.loading import SchemaError, load_file, validate_data
from schemas.manifest import DatasetEntry, Fingerprints, MixtureManifest, Provenance
from schemas.model_config import PRESETS, ModelConfig, load_model_config, preset
from schemas.record import Record, Reject
from schemas.run_config import RunConfig, load_run_config
from schemas.runner_profile import RunnerProfile

# name of the file in schemas/json/ -> model; `python -m schemas.export` writes them.
EXPORTED_MODELS = {
    "build_config": BuildConfig,
    "build_plan": BuildPlan,
    "file_info": FileInfo,
    "mixture_manifest": MixtureManifest,
    "model_config": ModelConfig,
    "record": Record,
    "reject": Reject,
    "run_config": RunConfig,
    "runner_profile": RunnerProfile,
}

__all__ = [
    "RunConfig",
    "load_run_config",
    "BuildConfig",
    "BuildPlan",
    "RunnerProfile",
    "Record",
    "Reject",
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
    "load_model_config",
    "preset",
    "validate_data",
]
