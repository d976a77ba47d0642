"""Decontamination: a training record sharing an n-gram with an evaluation item is rejected
(`contaminated`, the item in `detail`), whether the item is planted whole, as a structured
sample or inside prose; near misses, shared question templates and short fragments are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.pipeline.build import build_corpus
from corpus.pipeline.decontaminate import (
    Decontaminator,
    build_index,
    compared_texts,
    eval_item_of,
    eval_sets_digest,
    find_contamination,
)
from schemas import BuildConfig, Record
from schemas.build_config import DecontaminationConfig
from tests.corpus.pipeline.conftest import en_doc, zh_doc
from tests.corpus.pipeline.test_pipeline_build import all_records, all_rejects

EN_ITEM = {"question": "Which planet in the solar system has the largest number of confirmed natural satellites orbiting it today?",
           "options": {"<option_0>": "Jupiter", "<option_1>": "Saturn"}, "<ans>": "<option_1>"}
ZH_ITEM = {"input": "昏暗的灯熄灭了又被重新点亮。", "question": "这段话形容了哪句诗的意境？",
           "options": {"<option_0>": "渔灯灭复明", "<option_1>": "残灯灭又然", "<option_2>": "残灯暗复明"}, "<ans>": "<option_2>"}


def write_eval_set(path: Path, items: list[dict]) -> str:
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    return str(path)


@pytest.fixture()
def index(tmp_path):
    template = [{"input": f"第{i}个无关的句子，用来检查模板被忽略了吗", "question": ZH_ITEM["question"], "<ans>": "x"} for i in range(12)]
    config = DecontaminationConfig(eval_sets=[write_eval_set(tmp_path / "eval.jsonl", [EN_ITEM, ZH_ITEM, *template])])
    return config, build_index(config)


def test_structured_items_are_compared_on_question_input_and_options():
    assert compared_texts(ZH_ITEM) == ["昏暗的灯熄灭了又被重新点亮。", "这段话形容了哪句诗的意境？", "渔灯灭复明", "残灯灭又然", "残灯暗复明",
                                      "昏暗的灯熄灭了又被重新点亮。\n这段话形容了哪句诗的意境？\n渔灯灭复明\n残灯灭又然\n残灯暗复明"]
    assert compared_texts({"text": "plain", "id": 3}) == ["plain"]


def test_an_item_inside_prose_is_found_with_its_label(index):
    config, eval_index = index
    prose = "Trivia night. " + EN_ITEM["question"].upper().replace(" ", "  ") + " Answers next week."
    item, shared, example = find_contamination(prose, eval_index, config)
    assert eval_index.labels[item] == "eval.jsonl:1" and shared >= 1 and "largest number" in example
    item, _, _ = find_contamination("读书笔记：昏暗的灯熄灭了，又被重新点亮。真是好句。", eval_index, config)
    assert eval_index.labels[item] == "eval.jsonl:2"


def test_near_misses_templates_and_short_fragments_are_not_hits(index):
    config, eval_index = index
    assert find_contamination("Which planet in the solar system has the largest number of moons? Saturn.", eval_index, config) is None
    assert find_contamination("老师问：这段话形容了哪句诗的意境？学生答不上来。", eval_index, config) is None  # shared by 13 items
    assert find_contamination("夜里残灯灭又然，窗外风声很大。", eval_index, config) is None  # a 5-character option alone
    assert eval_index.templates_left_out >= 1


def test_the_stage_rejects_with_the_item_in_detail(index):
    config, eval_index = index
    record = Record(source_path="a.jsonl", source_line=4, kind="json", text="\n".join(compared_texts(ZH_ITEM)[:-1]), data=ZH_ITEM)
    kept, reject = Decontaminator(config).process_record(record, eval_index)
    assert kept is None and reject.stage == "decontamination" and reject.reason == "contaminated"
    assert eval_item_of(reject.detail) == (config.eval_sets[0], "eval.jsonl:2")


def test_missing_eval_set_fails_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="decontamination.eval_sets: .*nope.jsonl does not exist"):
        eval_sets_digest(DecontaminationConfig(eval_sets=[str(tmp_path / "nope.jsonl")]))


def test_every_planted_ccpm_item_is_found_and_nothing_else(tmp_path, shared_cpm_bee):
    items = [json.loads(line) for line in (shared_cpm_bee / "ccpm_eval.jsonl").read_text(encoding="utf-8").splitlines()[:60]]
    raw = tmp_path / "raw"
    (raw / "json").mkdir(parents=True)
    (raw / "txt").mkdir()
    (raw / "json" / "planted.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items[::3]), encoding="utf-8")
    prose = [en_doc(i) for i in range(8)] + [zh_doc(i) for i in range(8)]
    prose[3] = "古诗赏析：" + items[1]["input"] + "作者借景抒情。" + zh_doc(99)  # an item's input inside prose
    (raw / "txt" / "docs.txt").write_text("\n".join(prose) + "\n", encoding="utf-8")
    eval_set = write_eval_set(tmp_path / "ccpm.jsonl", items)
    config = BuildConfig(input=[str(raw)], output=str(tmp_path / "ds"), dataset_name="d", task_name="t",
                         split={"min_length": 10, "max_length": 1500}, decontamination={"eval_sets": [eval_set]})
    result = build_corpus(config, [], log=lambda line: None)
    assert result.units_in + result.extra_pieces == result.written + result.rejected
    hits = {(r.source_path, r.source_line): eval_item_of(r.detail)[1] for r in all_rejects(result.output) if r.reason == "contaminated"}
    planted = {("json/planted.jsonl", n + 1): f"ccpm.jsonl:{3 * n + 1}" for n in range(20)}
    assert hits == {**planted, ("txt/docs.txt", 4): "ccpm.jsonl:2"}
    assert len(all_records(result.output)) == 15
    report = json.loads((result.output / "report.json").read_text())
    assert report["contamination"] == {eval_set: {"records": 21, "items": 21}}
    assert "## Decontamination" in (result.output / "report.md").read_text()
