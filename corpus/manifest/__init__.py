"""Mixture manifests (CPM-Bee's `datasets.json`): storage, editing and review tooling."""

from corpus.manifest.store import read_manifest, upsert_entry, write_manifest

__all__ = ["read_manifest", "upsert_entry", "write_manifest"]
