"""Connected components inside Beam (large-star / small-star) agree with a union-find."""

from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpus.pipeline.connected_components import ConnectedComponents


def union_find_labels(edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        parent[max(a, b)] = min(a, b)
    return sorted((node, find(node)) for node in parent if find(node) != node)


def test_components_match_union_find_on_chains_stars_and_random_graphs():
    rng = random.Random(7)
    chain = [(i, i + 1) for i in range(100, 164)]                 # a path of 65 nodes, worst case depth
    reversed_chain = [(i + 1, i) for i in range(300, 340)]
    star = [(500, 500 + i) for i in range(1, 30)]
    scattered = [(rng.randrange(1000, 1200), rng.randrange(1000, 1200)) for _ in range(150)]
    edges = [e for e in chain + reversed_chain + star + scattered if e[0] != e[1]]
    with TestPipeline() as p:
        labels = p | beam.Create(edges) | ConnectedComponents(rounds=8)
        assert_that(labels, equal_to(union_find_labels(edges)))
