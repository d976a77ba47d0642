"""Corpus pipeline: Beam stages, the CPM-Bee blocked binary dataset format, mixture manifests."""
