"""Specification of `trainer.packing` and `trainer.incontext`: best-fit rows, targets, ext table, in-context samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenization import CPMBeeTokenizer
from trainer.incontext import Instance, SampleRejected, build_instance
from trainer.packing import IGNORE_INDEX, BatchPacker

TINY_VOCAB = Path(__file__).parent / "assets" / "tiny_vocab.txt"
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def tokenizer() -> CPMBeeTokenizer:
    return CPMBeeTokenizer(TINY_VOCAB)


def synthetic(n: int, task: str = "t", rel: int = 4) -> Instance:
    """An instance of `n` tokens (ids 20..), all context but the last half."""
    context = np.ones(n, dtype=np.int8)
    context[n // 2 :] = 0
    return Instance(
        task_name=task,
        input_ids=np.arange(20, 20 + n, dtype=np.int32),
        input_sub=np.zeros(n, dtype=np.int32),
        context=context,
        segment_ids=np.zeros(n, dtype=np.int32),
        segment_rel_offset=np.zeros(n, dtype=np.int32),
        segment_rel=np.arange(rel, dtype=np.int32),
        sample_ids=np.zeros(n, dtype=np.int32),
        num_segments=np.full(n, 2, dtype=np.int32),
    )


# --------------------------------------------------------------------------- targets


def test_answer_tokens_predict_the_next_token_and_the_answer_ends_with_eos(tokenizer):
    packer = BatchPacker(1, 40, tokenizer)
    packer.add({"q": "ab", "<ans>": "cd"}, "qa")
    batch = packer.pack_batch()
    # <s> <root> </s> | <s> q </s> | <s> a b </s> | <s> <ans> </s> | <s> c d   (16 tokens)
    encode = tokenizer.encoder
    assert batch["length"].tolist() == [16]
    assert batch["inputs"][0, 13:16].tolist() == [tokenizer.bos_id, encode["c"], encode["d"]]
    assert batch["context"][0, :16].tolist() == [True] * 13 + [False] * 3
    expected = np.full(40, IGNORE_INDEX)
    expected[13:16] = [encode["c"], encode["d"], tokenizer.eos_id]
    assert batch["target"][0].tolist() == expected.tolist()


def test_an_answer_followed_by_another_instance_still_ends_with_eos(tokenizer):
    packer = BatchPacker(1, 40, tokenizer)
    packer.add({"q": "ab", "<ans>": "cd"}, "qa")
    packer.add({"<ans>": "e"}, "qa")  # fits in the same row, right after `d`
    batch = packer.pack_batch()
    assert batch["spans"][0, 15:17].tolist() == [0, 1]
    assert batch["target"][0, 15] == tokenizer.eos_id  # `d` is followed by the next instance's <s>


def test_padding_and_context_are_never_targets(tokenizer):
    packer = BatchPacker(2, 64, tokenizer)
    packer.add({"text": "the bee", "<ans>": "data"}, "a")
    packer.add({"text": "x" * 50, "<ans>": "model"}, "a")
    batch = packer.pack_batch()
    targeted = batch["target"] != IGNORE_INDEX
    assert not (targeted & batch["context"]).any()
    used = np.arange(64)[None, :] < batch["length"][:, None]
    assert not (targeted & ~used).any()


# --------------------------------------------------------------------------- best fit


def test_best_fit_puts_an_instance_in_the_fullest_row_that_still_holds_it(tokenizer):
    packer = BatchPacker(8, 100, tokenizer)
    for n in (60, 70, 80):  # no two share a row: rooms 40, 30, 20
        packer.add_instance(synthetic(n))
    packer.add_instance(synthetic(25))  # fits rows 0 and 1: row 1 has less room left
    packer.add_instance(synthetic(20))  # fits rows 0 and 2: row 2, exactly filled
    packer.add_instance(synthetic(41))  # fits nowhere: a new row
    batch = packer.pack_batch(force=True)
    assert batch["length"].tolist() == [60, 95, 100, 41]


def test_equally_good_rows_go_to_the_first(tokenizer):
    packer = BatchPacker(8, 100, tokenizer)
    packer.add_instance(synthetic(50))
    packer.add_instance(synthetic(50, task="x"))  # row 0 has room 50: joins it
    packer.add_instance(synthetic(60))
    packer.add_instance(synthetic(60))
    packer.add_instance(synthetic(40, task="y"))  # rows 1 and 2 both have room 40
    batch = packer.pack_batch(force=True)
    assert batch["length"].tolist() == [100, 100, 60]


def test_a_batch_comes_out_once_more_than_batch_size_rows_are_open(tokenizer):
    packer = BatchPacker(2, 10, tokenizer)
    assert packer.add_instance(synthetic(8)) is None
    assert packer.add_instance(synthetic(8)) is None
    assert len(packer) == 2
    batch = packer.add_instance(synthetic(8))
    assert batch is not None and batch["inputs"].shape == (2, 10)
    assert len(packer) == 1  # the third row stays open for the next batch


def test_pack_batch_needs_a_full_batch_unless_forced(tokenizer):
    packer = BatchPacker(3, 10, tokenizer)
    packer.add_instance(synthetic(8))
    with pytest.raises(RuntimeError, match="1 rows open"):
        packer.pack_batch()
    assert packer.pack_batch(force=True)["inputs"].shape == (1, 10)
    with pytest.raises(RuntimeError, match="no open rows"):
        packer.pack_batch(force=True)


def test_segment_rel_offsets_point_into_each_instance_block_of_the_row(tokenizer):
    packer = BatchPacker(1, 100, tokenizer)
    packer.add_instance(synthetic(10, rel=9))
    packer.add_instance(synthetic(10, rel=4))
    batch = packer.pack_batch()
    assert batch["segment_rel_offset"][0, :20].tolist() == [0] * 10 + [9] * 10
    assert batch["segment_rel"][0].tolist() == list(range(9)) + list(range(4))


def test_task_names_are_listed_in_order_of_first_appearance(tokenizer):
    packer = BatchPacker(3, 10, tokenizer)
    for task in ("qa", "lm", "qa"):
        packer.add_instance(synthetic(8, task=task))
    batch = packer.pack_batch()
    assert batch["task_names"] == ["qa", "lm"]
    assert batch["task_ids"][:, 0].tolist() == [0, 1, 0]


# --------------------------------------------------------------------------- ext table


def test_ext_tokens_get_one_batch_slot_each_in_order_of_first_appearance(tokenizer):
    packer = BatchPacker(2, 64, tokenizer)
    # unknown characters become <unk> with sub-ids 0, 1, 2 per instance; only subs > 0 need slots
    packer.add({"text": "a", "<ans>": "中a文a字"}, "a")  # each unknown span is one <unk>
    packer.add({"text": "b" * 40, "<ans>": "甲b乙"}, "a")  # too long to share the row: a second row
    batch = packer.pack_batch()
    unk = tokenizer.unk_id
    assert batch["ext_ids"].tolist() == [unk, unk]
    assert batch["ext_sub"].tolist() == [1, 2]
    vocab = tokenizer.vocab_size
    row0 = batch["target"][0][batch["target"][0] != IGNORE_INDEX].tolist()
    a, b = tokenizer.encoder["a"], tokenizer.encoder["b"]
    assert row0 == [unk, a, vocab + 0, a, vocab + 1, tokenizer.eos_id]  # 中 (sub 0) is a plain <unk>
    row1 = batch["target"][1][batch["target"][1] != IGNORE_INDEX].tolist()
    assert row1 == [unk, b, vocab + 0, tokenizer.eos_id]  # (unk, 1) shares the slot of row 0


def test_a_batch_without_ext_tokens_has_one_placeholder_entry(tokenizer):
    packer = BatchPacker(1, 32, tokenizer)
    packer.add({"text": "bee", "<ans>": "data"}, "a")
    batch = packer.pack_batch()
    assert batch["ext_ids"].tolist() == [0] and batch["ext_sub"].tolist() == [1]
    assert batch["ext_ids"].dtype == np.int32


# --------------------------------------------------------------------------- in-context samples


def test_incontext_samples_are_context_with_their_own_sample_ids_and_rel_blocks(tokenizer):
    main, extra1, extra2 = {"q": "a", "<ans>": "b"}, {"q": "c", "<ans>": "d"}, {"text": "e"}
    alone = [build_instance(tokenizer, s, "t", max_length=200) for s in (main, extra1, extra2)]
    instance = build_instance(tokenizer, main, "t", [extra1, extra2], max_length=200)
    sizes = [len(a) for a in alone]
    assert len(instance) == sum(sizes)
    assert instance.sample_ids.tolist() == [0] * sizes[0] + [1] * sizes[1] + [2] * sizes[2]
    assert (instance.context[sizes[0] :] == 1).all()  # in-context answers are given, not predicted
    assert (instance.context[: sizes[0]] == alone[0].context).all()
    rel_sizes = [a.segment_rel.shape[0] for a in alone]
    expected_offsets = [0] * sizes[0] + [rel_sizes[0]] * sizes[1] + [rel_sizes[0] + rel_sizes[1]] * sizes[2]
    assert instance.segment_rel_offset.tolist() == expected_offsets
    assert instance.num_segments.tolist() == sum(([a.num_segments[0]] * len(a) for a in alone), [])


def test_incontext_samples_share_the_ext_table_of_the_instance(tokenizer):
    instance = build_instance(tokenizer, {"<ans>": "中a文"}, "t", [{"text": "文"}], max_length=200)
    subs = instance.input_sub[instance.input_ids == tokenizer.unk_id].tolist()
    assert subs == [0, 1, 1]  # 文 keeps sub 1 in the in-context sample


def test_incontext_samples_are_read_only_while_the_instance_has_room(tokenizer):
    taken = []

    def samples():
        for n in (5, 30, 1, 1):
            taken.append(n)
            yield {"text": "x" * n}

    instance = build_instance(tokenizer, {"<ans>": "a"}, "t", samples(), max_length=40)
    # the sample (12 tokens) + 5 x's (11 tokens) fit; 30 x's do not: read, unused, and the end
    assert taken == [5, 30]
    assert instance.sample_ids.max() == 1


def test_a_too_long_sample_is_rejected_before_any_incontext_sample_is_read(tokenizer):
    def never():
        raise AssertionError("in-context samples must not be read")
        yield

    with pytest.raises(SampleRejected) as rejected:
        BatchPacker(1, 16, tokenizer).add({"text": "x" * 40}, "t", never())
    assert rejected.value.reason == "too_long"


def test_an_unconvertible_sample_is_rejected_with_its_reason(tokenizer):
    packer = BatchPacker(1, 64, tokenizer)
    with pytest.raises(SampleRejected) as rejected:
        packer.add({"text": "a < b"}, "t")  # an unescaped `<`
    assert rejected.value.reason == "unconvertible"
    with pytest.raises(SampleRejected):
        packer.add({"text": 3}, "t")
    assert len(packer) == 0


def test_answer_fields_are_shuffled_only_with_a_generator(tokenizer):
    sample = {"<ans>": {k: k for k in "abcdefgh"}}
    fixed = [build_instance(tokenizer, sample, "t", max_length=200).input_ids.tolist() for _ in range(3)]
    assert fixed[0] == fixed[1] == fixed[2]
    rng = np.random.default_rng(0)
    shuffled = {tuple(build_instance(tokenizer, sample, "t", max_length=200, shuffle_rng=rng).input_ids) for _ in range(5)}
    assert len(shuffled) > 1


# --------------------------------------------------------------------------- checkpoint state


def test_open_rows_survive_a_state_dict_round_trip(tokenizer):
    samples = [{"text": "x" * n, "<ans>": "bee"} for n in (3, 20, 7, 11, 2, 30, 9, 4, 15, 6)]
    uninterrupted = BatchPacker(2, 48, tokenizer)
    expected = [b for s in samples if (b := uninterrupted.add(s, "t")) is not None]
    first = BatchPacker(2, 48, tokenizer)
    got = [b for s in samples[:5] if (b := first.add(s, "t")) is not None]
    assert len(first) > 0
    state = json.loads(json.dumps(first.state_dict(), default=lambda a: a.tolist()), object_hook=_arrays)
    resumed = BatchPacker(2, 48, tokenizer)
    resumed.load_state_dict(state)
    assert len(resumed) == len(first)
    got += [b for s in samples[5:] if (b := resumed.add(s, "t")) is not None]
    assert len(got) == len(expected) >= 2
    for want, have in zip(expected, got):
        for key in want:
            if key == "origins":  # nested lists, not an array
                assert want[key] == have[key]
            else:
                assert np.array_equal(want[key], have[key]), key


def _arrays(obj):
    # JSON round trip of a packer state: lists back to typed arrays
    if "input_ids" in obj:
        return {k: (v if k == "task_name" else np.asarray(v, dtype=np.int8 if k == "context" else np.int32)) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 64), min_size=1, max_size=40), batch_size=st.integers(1, 4))
def test_packing_places_every_token_once_and_never_overfills_a_row(tokenizer, lengths, batch_size):
    packer = BatchPacker(batch_size, 64, tokenizer)
    batches = [b for n in lengths if (b := packer.add_instance(synthetic(n))) is not None]
    while len(packer):
        batches.append(packer.pack_batch(force=True))
    spans = []
    for batch in batches:
        assert (batch["length"] <= 64).all()
        for row, length in zip(batch["spans"], batch["length"]):
            spans.extend(np.bincount(row[:length]).tolist())
    assert sorted(spans) == sorted(lengths)
    assert all(batch["inputs"].shape == (batch_size, 64) for batch in batches[:-1])


TEXT = st.text(alphabet="ab x中文<", min_size=0, max_size=12).map(lambda t: t.replace("<", "<<"))
SAMPLES = st.fixed_dictionaries({"text": TEXT, "<ans>": st.one_of(TEXT, st.dictionaries(st.sampled_from("pq"), TEXT, min_size=1))})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(samples=st.lists(SAMPLES, min_size=1, max_size=12))
def test_targets_follow_the_reference_rule(tokenizer, samples):
    packer = BatchPacker(3, 96, tokenizer)
    batches = [b for s in samples if (b := packer.add(s, "t")) is not None]
    batches.append(packer.pack_batch(force=True))
    for batch in batches:
        assert (batch["target"] == _reference_rule_targets(batch, tokenizer)).all()


def _reference_rule_targets(batch, tokenizer):
    """The target rule as CPM-Bee's pack_batch loop states it, token by token."""
    slots: dict[tuple[int, int], int] = {}
    target = np.full(batch["inputs"].shape, IGNORE_INDEX)
    for i, length in enumerate(batch["length"]):
        for j in range(length):
            idx, sub = int(batch["inputs"][i, j]), int(batch["inputs_sub"][i, j])
            tgt = idx
            if sub > 0:
                tgt = slots.setdefault((idx, sub), len(slots)) + tokenizer.vocab_size
            if j > 1 and not batch["context"][i, j - 1]:
                target[i, j - 1] = tokenizer.eos_id if idx == tokenizer.bos_id else tgt
        if not batch["context"][i, length - 1]:
            target[i, length - 1] = tokenizer.eos_id
    assert [batch["ext_ids"].tolist(), batch["ext_sub"].tolist()] == (
        [[k[0] for k in slots], [k[1] for k in slots]] if slots else [[0], [1]]
    )
    return target


# --------------------------------------------------------------------------- the reference itself


def test_batches_are_identical_to_cpm_bee_golden_fixture(shared_cpm_bee):
    """Replays the instances of tests/trainer/golden/packing_reference.* (made by CPM-Bee's own
    packer, see tests/benchmarks/compare_packing_reference.py) and compares every array."""
    meta = json.loads((GOLDEN / "packing_reference.json").read_text(encoding="utf-8"))
    arrays = np.load(GOLDEN / "packing_reference.npz")
    config = meta["config"]
    packer = BatchPacker(config["batch_size"], config["max_length"], CPMBeeTokenizer(shared_cpm_bee / "bee.txt"), config["max_depth"])
    samples = iter(meta["samples"])
    produced = []
    for step, (task, k) in enumerate(meta["steps"]):
        while True:  # the reference skips samples longer than max_length and reads on
            try:
                batch = packer.add(next(samples), task, (next(samples) for _ in range(k)))
                break
            except SampleRejected as rejected:
                assert rejected.reason == "too_long"
        if batch is not None:
            produced.append((step, batch))
    while len(packer):
        produced.append((len(meta["steps"]), packer.pack_batch(force=True)))

    assert [step for step, _ in produced] == [b["after_step"] for b in meta["batches"]]
    for n, ((_, batch), expected) in enumerate(zip(produced, meta["batches"])):
        for key in batch:
            if key in ("task_names", "task_ids", "origins"):  # the reference has no origins
                continue
            want = arrays[f"{n}/{key}"]
            assert batch[key].dtype == want.dtype and np.array_equal(batch[key], want), f"batch {n}: {key}"
        used = np.arange(config["max_length"])[None, :] < batch["length"][:, None]
        names = np.array(batch["task_names"], dtype=object)[batch["task_ids"]][used]
        want_names = np.array(expected["task_names"], dtype=object)[arrays[f"{n}/task_ids"]][used]
        assert np.array_equal(names, want_names), f"batch {n}: task_ids"
