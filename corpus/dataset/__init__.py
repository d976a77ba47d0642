"""CPM-Bee's blocked binary dataset format, byte-compatible with `cpm_live.dataset`."""

from corpus.dataset.meta import META_FILE, DatasetCorrupt, read_meta, write_meta

__all__ = ["META_FILE", "DatasetCorrupt", "read_meta", "write_meta"]
