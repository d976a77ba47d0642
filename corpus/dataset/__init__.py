"""CPM-Bee's blocked binary dataset format, byte-compatible with `cpm_live.dataset`.

The names mirror CPM-Bee's, so `from cpm_live.dataset import ...` becomes
`from corpus.dataset import ...`. See corpus/dataset/README.md.
"""

from corpus.dataset.convert import convert_dataset
from corpus.dataset.maintenance import compact_dataset, mask_dataset, merge_dataset
from corpus.dataset.meta import META_FILE, DatasetCorrupt, read_meta, write_meta
from corpus.dataset.reader import DistributedDataset, SimpleDataset, iter_records, merge_state_dicts
from corpus.dataset.serializer import (
    AutoSerializer,
    JsonSerializer,
    PickleSerializer,
    PlainDataUnpickler,
    RawSerializer,
    RestrictedUnpickler,
    Serializer,
    UnsafePickle,
    restricted_loads,
)
from corpus.dataset.shuffle import shuffle_dataset
from corpus.dataset.verify import VerifyReport, verify_dataset
from corpus.dataset.writer import FORMAT_VERSION, DatasetWriter, RecordTooLarge, build_dataset

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "AutoSerializer",
    "DatasetCorrupt",
    "DatasetWriter",
    "DistributedDataset",
    "JsonSerializer",
    "PickleSerializer",
    "PlainDataUnpickler",
    "RawSerializer",
    "RecordTooLarge",
    "RestrictedUnpickler",
    "Serializer",
    "SimpleDataset",
    "UnsafePickle",
    "VerifyReport",
    "build_dataset",
    "compact_dataset",
    "convert_dataset",
    "mask_dataset",
    "merge_dataset",
    "iter_records",
    "merge_state_dicts",
    "read_meta",
    "restricted_loads",
    "shuffle_dataset",
    "verify_dataset",
    "write_meta",
]
