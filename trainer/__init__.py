"""CPM-Bee model, objective, packing, mixture loader and the DeepSpeed ZeRO-3 train loop.

User-facing documentation: trainer/README.md.
"""

from trainer.data import MixtureLoader
from trainer.model import CPMBee
from trainer.packing import BatchPacker, PackedBatch
from trainer.weight_names import (
    CheckpointMismatch,
    from_cpm_live_state_dict,
    to_cpm_live_state_dict,
    to_hf_state_dict,
)

__all__ = [
    "BatchPacker",
    "CPMBee",
    "CheckpointMismatch",
    "MixtureLoader",
    "PackedBatch",
    "from_cpm_live_state_dict",
    "to_cpm_live_state_dict",
    "to_hf_state_dict",
]
