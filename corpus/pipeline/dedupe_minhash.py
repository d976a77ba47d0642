"""Stage 6, near dedupe: MinHash LSH over the whole build, clustered inside the Beam job.

1. Each signature is cut into `bands` x `rows`; records sharing a band value are candidates.
   Only positions travel through this shuffle; the signatures are joined back afterwards for
   the members of buckets with two or more members (few), not sent along with every band
   value (bands x the whole corpus's signatures).
2. In each band bucket, a member links to the earliest earlier member whose signature
   agrees on at least `threshold` of its values (estimated Jaccard), when `verify` is on.
3. Connected components of those links (distributed large-star / small-star, see
   connected_components.py) are the duplicate clusters; each keeps its earliest member by input
   position, the others get a `near_duplicate` verdict with `duplicate_of` set, the kept
   one a verdict with its cluster's size.

Only fingerprints travel (position, signature): the records stay in their input file's
checkpoint until `write_shards.py` applies the verdicts.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from corpus.pipeline.connected_components import ConnectedComponents
from corpus.pipeline.fingerprint import signature_values
from corpus.pipeline.stage import METRICS_NAMESPACE, Verdict, location
from schemas.build_config import NearDedupeConfig

STAGE = "near_dedupe"
MAX_LINK_SCAN = 64  # earlier bucket members tried before linking to the bucket's first


def bands_and_rows(config: NearDedupeConfig) -> tuple[int, int]:
    """The configured bands x rows, or datasketch's optimum for `threshold` and `num_perm`."""
    if config.bands is not None:
        return config.bands, config.rows
    from datasketch.lsh import _optimal_param  # here only (driver, pipeline construction): imports scipy

    return _optimal_param(config.threshold, config.num_perm, 0.5, 0.5)


def band_keys(signature: bytes, bands: int, rows: int) -> list[tuple[int, bytes]]:
    values = signature_values(signature)
    return [(band, values[band * rows:(band + 1) * rows].tobytes()) for band in range(bands)]


def estimated_jaccard(a: bytes, b: bytes) -> float:
    return float(np.mean(signature_values(a) == signature_values(b)))


def colliding_members(element):
    """(band key, positions) -> (position, band key) for each member of a bucket of two or more."""
    key, positions = element
    positions = list(positions)
    if len(positions) > 1:
        for position in positions:
            yield (position, key)


def signature_to_buckets(element):
    """(position, {"signature": [signature], "bucket": [band key]}) -> (band key, (position, signature))."""
    position, groups = element
    keys = list(groups["bucket"])
    if keys:
        signature = next(iter(groups["signature"]))
        for key in keys:
            yield (key, (position, signature))


class LinkBucketFn(beam.DoFn):
    """(band key, [(position, signature)]) -> (position, earlier similar position) links."""

    def __init__(self, config: NearDedupeConfig):
        self.config = config

    def setup(self) -> None:
        self.unverified = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.unverified_candidates")

    def process(self, element):
        _, members = element
        members = sorted(members)
        if len(members) < 2:
            return
        for index in range(1, len(members)):
            position, signature = members[index]
            if not self.config.verify:
                yield (position, members[0][0])
                continue
            for earlier, earlier_signature in members[: min(index, MAX_LINK_SCAN)]:
                if estimated_jaccard(signature, earlier_signature) >= self.config.threshold:
                    yield (position, earlier)
                    break
            else:
                # A band collision whose signatures disagree: an LSH false positive, not a link.
                self.unverified.inc()


def drop_verdict(label):
    """(position, root of its cluster) -> the `near_duplicate` verdict naming the root."""
    position, root = label
    return Verdict(position, STAGE, "near_duplicate", duplicate_of=location(root),
                   detail=f"MinHash LSH cluster kept {location(root)} (piece {root[2]})")


class MinHashDedupe(beam.PTransform):
    """PCollection[Fingerprint] -> PCollection[Verdict]: drops, and the size of each cluster's kept member."""

    def __init__(self, config: NearDedupeConfig):
        super().__init__()
        self.config = config

    def expand(self, fingerprints):
        bands, rows = bands_and_rows(self.config)
        signed = fingerprints | "Signed" >> beam.Filter(lambda f: f.minhash is not None)
        colliding = (
            signed
            | "Bands" >> beam.FlatMap(lambda f: [(key, f.position) for key in band_keys(f.minhash, bands, rows)])
            | "GroupBands" >> beam.GroupByKey()
            | "Colliding" >> beam.FlatMap(colliding_members)
        )
        signatures = signed | "KeySignature" >> beam.Map(lambda f: (f.position, f.minhash))
        links = (
            {"signature": signatures, "bucket": colliding}
            | "JoinSignatures" >> beam.CoGroupByKey()
            | "ToBuckets" >> beam.FlatMap(signature_to_buckets)
            | "GroupBuckets" >> beam.GroupByKey()
            | "LinkBuckets" >> beam.ParDo(LinkBucketFn(self.config))
        )
        labels = links | "Components" >> ConnectedComponents(self.config.cc_rounds)
        drops = labels | "Drop" >> beam.Map(drop_verdict)
        sizes = (
            labels
            | "RootOf" >> beam.Map(lambda pair: (pair[1], 1))
            | "CountMembers" >> beam.CombinePerKey(sum)
            | "Size" >> beam.MapTuple(lambda root, members: Verdict(root, STAGE, cluster_size=members + 1))
        )
        return (drops, sizes) | "Verdicts" >> beam.Flatten()
