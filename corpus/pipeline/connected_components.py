"""Connected components of a graph given as an edge PCollection, computed inside the Beam job
with the alternating large-star / small-star algorithm (Kiveris et al., "Connected Components
in MapReduce and Beyond", 2014). No worker ever holds more than one node's neighbourhood.

Nodes are any totally ordered, picklable values; every component is labelled by its smallest
node. The number of rounds is fixed when the pipeline is built (Beam graphs have no loops);
`unconverged` counts nodes whose label is not final yet, and must be 0 for the labels to hold.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from corpus.pipeline.stage import METRICS_NAMESPACE

UNCONVERGED_COUNTER = "near_dedupe.cc_unconverged"


def _large_star(element):
    node, neighbours = element
    neighbours = set(neighbours)
    smallest = min(neighbours | {node})
    for other in neighbours:
        if other > node:
            yield (other, smallest)


def _small_star(element):
    node, smaller = element
    smaller = set(smaller)
    smallest = min(smaller | {node})
    for other in smaller | {node}:
        if other != smallest:
            yield (other, smallest)


def _both_directions(edge):
    u, v = edge
    yield (u, v)
    yield (v, u)


def _larger_first(edge):
    u, v = edge
    return (u, v) if u > v else (v, u)


class _Round(beam.PTransform):
    """One large-star and one small-star step: two shuffles. Both steps read a node's
    neighbours as a set, so duplicate edges are harmless and no Distinct (a shuffle of its
    own, on a runner that pays per stage) is needed between them; each step emits at most
    one edge per distinct neighbour, so duplicates never pile up from round to round."""

    def expand(self, edges):
        large = (
            edges
            | "BothWays" >> beam.FlatMap(_both_directions)
            | "GroupLarge" >> beam.GroupByKey()
            | "LargeStar" >> beam.FlatMap(_large_star)
        )
        return (
            large
            | "Orient" >> beam.Map(_larger_first)
            | "GroupSmall" >> beam.GroupByKey()
            | "SmallStar" >> beam.FlatMap(_small_star)
        )


class _LabelFn(beam.DoFn):
    """(node, {"parents": [...], "children": [...]}) -> (node, label) for every non-root node."""

    def setup(self) -> None:
        self.unconverged = Metrics.counter(METRICS_NAMESPACE, UNCONVERGED_COUNTER)

    def process(self, element):
        node, groups = element
        parents = set(groups["parents"])
        if parents:  # roots (no parent) label themselves and are left out
            if len(parents) > 1 or list(groups["children"]):
                # Not a star yet: this node has two parents, or is both a parent and a child.
                self.unconverged.inc()
            yield (node, min(parents))


class ConnectedComponents(beam.PTransform):
    """PCollection[(u, v)] -> PCollection[(node, smallest node of its component)] for every node
    that is not the smallest of its component (the roots label themselves and are left out).
    """

    def __init__(self, rounds: int = 8):
        super().__init__()
        self.rounds = rounds

    def expand(self, edges):
        edges = edges | "Canonical" >> beam.Map(_larger_first)  # duplicates are harmless (see _Round)
        for index in range(self.rounds):
            edges = edges | f"Round{index}" >> _Round()
        parents = edges | "ChildToParent" >> beam.Map(lambda e: (e[0], e[1]))
        children = edges | "ParentToChild" >> beam.Map(lambda e: (e[1], e[0]))
        return (
            {"parents": parents, "children": children}
            | "Join" >> beam.CoGroupByKey()
            | "Label" >> beam.ParDo(_LabelFn())
        )
