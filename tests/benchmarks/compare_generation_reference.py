"""Compare `trainer.generation.CPMBeeBeamSearch` with CPM-Bee's `CPMBeeBeamSearch` on `CPMBeeTorch`.

Same random weights (the `</s>` embedding scaled up so that answers end at varied lengths and
multi-slot samples move from slot to slot), same samples, float32 on CPU: string answers,
`<mask_N>` slots, CCPM option questions, few-shot prompts written into the text, unknown
characters, one batch of different lengths, with and without a repetition penalty. Prints,
per case, whether the generated (token, slot) lists and the filled samples are identical,
ours with the key/value cache and without it. The reference runs from a scratch copy
(tests/benchmarks/compare_model_reference.py explains the folder); skipped when absent.

    .venv/bin/python tests/benchmarks/compare_generation_reference.py [--reference DIR] [--samples N]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from schemas.model_config import ModelConfig, preset  # noqa: E402
from tokenization.tokenizer import CPMBeeTokenizer  # noqa: E402
from trainer.generation import CPMBeeBeamSearch  # noqa: E402
from trainer.model import CPMBee  # noqa: E402



def _beside_repo(relative: str) -> Path:
    """`relative` in the first folder above the repository that has it (a git worktree sits
    one level deeper than the main checkout)."""
    for parent in REPO.parents:
        if (parent / relative).exists():
            return parent / relative
    return REPO.parent / relative


DEFAULT_REFERENCE = Path(os.environ.get("CPM_BEE_MODEL_COMPARE", _beside_repo("scratch/model-compare")))
VOCAB = _beside_repo("shared/cpm-bee/bee.txt")
CCPM = _beside_repo("shared/cpm-bee/ccpm_eval.jsonl")


def model_config() -> ModelConfig:
    """A small model on the real vocabulary: 2 layers, dim 128, the published bucket settings."""
    return ModelConfig(vocab_size=86583, dim_model=128, dim_ff=256, num_layers=2, num_heads=4, dim_head=32, half=False)


def realistic_config(layers: int = 8) -> ModelConfig:
    """The cpm-bee-1b preset's shape (dim 4096, 20 heads of 64, dim_ff 1024, the real
    vocabulary, its pruned attention/feed-forward pattern) cut to its first `layers` layers,
    float32."""
    full = preset("cpm-bee-1b")
    return full.model_copy(update={"num_layers": layers, "mask_modules": full.mask_modules[:layers], "half": False})


def build_models(config: ModelConfig, reference, eos_id: int, seed: int = 0) -> tuple[CPMBee, torch.nn.Module]:
    torch.manual_seed(seed)
    ours = CPMBee(config).eval()
    with torch.no_grad():
        ours.input_embedding.weight[eos_id] *= 6.0  # answers end at varied lengths
    ref = reference["build"](config)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()
    return ours, ref


def load_reference(path: Path) -> dict[str, Any]:
    sys.path[:0] = [str(path), str(path / "stubs")]
    from cpm_live.generation.bee import CPMBeeBeamSearch as RefBeamSearch
    from cpm_live.models.bee import CPMBeeConfig
    from cpm_live.models.bee_torch import CPMBeeTorch
    from cpm_live.tokenizers.bee import CPMBeeTokenizer as RefTokenizer

    def build(config: ModelConfig) -> torch.nn.Module:
        fields = config.model_dump()
        fields["half"] = False
        return CPMBeeTorch(CPMBeeConfig(**fields))

    return {"build": build, "beam_search": RefBeamSearch, "tokenizer": RefTokenizer()}


def samples(count: int) -> list[dict[str, Any]]:
    """Varied samples: hand-written ones first, then CCPM questions with the answer emptied."""
    few_shot = "问：1+1等于几？答：2。问：2+2等于几？答：4。问：3+3等于几？答："
    out: list[dict[str, Any]] = [
        {"input": "今天天气是真的", "<ans>": ""},
        {"document": "今天天气是真的<mask_0>", "<ans>": {"<mask_0>": ""}},
        {"text": "北京是<mask_0>的首都，位于<mask_1>。", "<ans>": {"<mask_0>": "", "<mask_1>": ""}},
        {"input": few_shot, "<ans>": ""},
        {"input": "Translate to English: 我爱你", "prompt": "翻译", "<ans>": {"translation": "", "notes": {"a": "", "b": ""}}},
        {"input": "稀有字𪚥和表情😀", "<ans>": ""},
        {"question": "选一个", "options": {"<option_0>": "甲", "<option_1>": "乙"}, "<ans>": ""},
        {"input": "x" * 3, "<ans>": {"<mask_7>": "", "<mask_2>": ""}},
    ]
    with open(CCPM, encoding="utf-8") as f:
        for line in f:
            if len(out) >= count:
                break
            sample = json.loads(line)
            sample["<ans>"] = ""
            out.append(sample)
    return out[:count]


def few_shot_samples(count: int, shots: int = 3) -> list[dict[str, Any]]:
    """CCPM questions each preceded, in its input text, by the `shots` CCPM questions before
    it with their answers (prompts of about 150 to 250 tokens: what a few-shot evaluation feeds)."""
    with open(CCPM, encoding="utf-8") as f:
        items = [json.loads(line) for _, line in zip(range(count + shots), f)]

    def solved(item: dict[str, Any]) -> str:
        options = " ".join(f"{chr(ord('A') + k)}. {text}" for k, text in enumerate(item["options"].values()))
        return f"{item['input']} {item['question']} {options} 答案：{item['options'][item['<ans>']]}"

    out = []
    for i in range(shots, shots + count):
        sample = copy.deepcopy(items[i])
        examples = "\n".join(f"例{k + 1}：{solved(item)}" for k, item in enumerate(items[i - shots : i]))
        sample["input"] = f"{examples}\n题目：{sample['input']}"
        sample["<ans>"] = ""
        out.append(sample)
    return out


def run_ours(model: CPMBee, tokenizer: CPMBeeTokenizer, data: list[dict], use_cache: bool, **kwargs: Any):
    gen = CPMBeeBeamSearch(model, tokenizer)
    _, tokens = gen.decode(copy.deepcopy(data), use_cache=use_cache, **kwargs)
    filled = gen.generate(copy.deepcopy(data), use_cache=use_cache, **kwargs)
    return tokens, filled


def run_reference(ref_model, reference, data: list[dict], **kwargs: Any):
    gen = reference["beam_search"](ref_model, reference["tokenizer"])
    inputs, info = gen._process_list(copy.deepcopy(data))
    with torch.inference_mode():
        tokens = gen._decode(inputs, info, **kwargs)
    filled = gen.generate(copy.deepcopy(data), **kwargs)
    return [[tuple(map(int, t)) for t in sample] for sample in tokens], filled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="scratch folder with cpm_live/ and stubs/")
    parser.add_argument("--samples", type=int, default=24, help="how many samples in all (hand-written + CCPM)")
    parser.add_argument("--max-length", type=int, default=24)
    args = parser.parse_args(argv)
    if not (args.reference / "cpm_live" / "generation" / "bee.py").is_file():
        print(f"SKIP: reference checkout {args.reference} not found (set CPM_BEE_MODEL_COMPARE)")
        return 0
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    reference = load_reference(args.reference)
    tokenizer = CPMBeeTokenizer(VOCAB)
    config = model_config()
    ours, ref = build_models(config, reference, tokenizer.eos_id)
    data = samples(args.samples)
    batched = [data[i : i + 6] for i in range(0, len(data), 6)]  # batches of different lengths
    cases = [
        ("one at a time, beam 3", [[d] for d in data[:4]], dict(beam_size=3, repetition_penalty=1.0, repetition_window=None)),
        ("batches of 6, beam 3", batched, dict(beam_size=3, repetition_penalty=1.0, repetition_window=None)),
        ("batches of 6, beam 4, penalty 1.1", batched, dict(beam_size=4, repetition_penalty=1.1, repetition_window=None)),
        ("batches of 6, beam 2, penalty 1.3 window 4", batched, dict(beam_size=2, repetition_penalty=1.3, repetition_window=4)),
        ("few-shot CCPM (3 shots), batches of 6, beam 3", [few_shot_samples(6)], dict(beam_size=3, repetition_penalty=1.0, repetition_window=None)),
    ]
    failures = 0
    print(f"{'case':44} {'samples':>7} {'tokens':>7} {'cache':>6} {'no cache':>8} {'filled':>6} {'ours s':>7} {'ref s':>7}")
    for name, groups, kwargs in cases:
        kwargs = dict(kwargs, max_length=args.max_length)
        same = {"cache": 0, "no cache": 0, "filled": 0}
        n_samples = n_tokens = 0
        seconds = {"ours": 0.0, "ref": 0.0}
        for group in groups:
            start = time.perf_counter()
            ref_tokens, ref_filled = run_reference(ref, reference, group, **kwargs)
            seconds["ref"] += time.perf_counter() - start
            start = time.perf_counter()
            tokens, filled = run_ours(ours, tokenizer, group, True, **kwargs)
            seconds["ours"] += time.perf_counter() - start
            tokens_nc, filled_nc = run_ours(ours, tokenizer, group, False, **kwargs)
            for k, (r, a, b) in enumerate(zip(ref_tokens, tokens, tokens_nc)):
                same["cache"] += r == a
                same["no cache"] += r == b
                same["filled"] += ref_filled[k] == filled[k] == filled_nc[k]
                if r != a or ref_filled[k] != filled[k]:
                    print(f"  DIFF {name}: sample {json.dumps(group[k], ensure_ascii=False)[:80]}\n"
                          f"    ref  {r}\n    ours {a}\n    ref  {ref_filled[k]['<ans>']!r}\n    ours {filled[k]['<ans>']!r}")  # fmt: skip
            n_samples += len(group)
            n_tokens += sum(len(t) for t in ref_tokens)
        failures += sum(n_samples - v for v in same.values())
        print(f"{name:44} {n_samples:7d} {n_tokens:7d} {same['cache']:6d} {same['no cache']:8d} {same['filled']:6d} "
              f"{seconds['ours']:7.2f} {seconds['ref']:7.2f}")  # fmt: skip
    verdict = "PASS" if failures == 0 else "FAIL"
    print(f"identical token lists and filled samples: {verdict} ({failures} differences)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
