"""Compare `trainer.model.CPMBee` with CPM-Bee's reference `CPMBeeTorch` on the same weights.

The reference runs from a scratch copy outside this repository (DESIGN.md: cpm_live with its
hard-coded "cuda" made "cpu", plus a stand-in `bmtrain` module under `stubs/`). Skipped, with
a message, when that folder is absent. Prints max abs / rel error of the logits (and of the
weight gradients of a sum-of-logits loss) for a few configs and packed batches.

    .venv/bin/python tests/benchmarks/compare_model_reference.py [--reference DIR]
    .venv/bin/python tests/benchmarks/compare_model_reference.py --write-golden tests/trainer/golden/cpmbee_tiny.npz

Relative error is max|ours - ref| / max|ref| over the tensor.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from schemas.model_config import ModelConfig, preset
from trainer.model import CPMBee
from trainer.weight_names import to_cpm_live_state_dict

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = Path(os.environ.get("CPM_BEE_MODEL_COMPARE", REPO.parent / "scratch" / "model-compare"))
BATCH_KEYS = (
    "input", "input_sub", "length", "context", "sample_ids", "num_segments", "segment",
    "segment_rel_offset", "segment_rel", "span", "ext_table_ids", "ext_table_sub",
)  # fmt: skip


def golden_config() -> ModelConfig:
    """The tiny preset with a 512-token vocabulary (keeps the fixture small) and three
    layers, the middle one without attention and the last without feed-forward."""
    return preset("tiny").model_copy(
        update={"vocab_size": 512, "num_layers": 3, "mask_modules": [(False, False), (True, False), (False, True)]}
    )


def random_batch(config: ModelConfig, batch: int, seqlen: int, seed: int) -> dict[str, torch.Tensor]:
    """A packed batch shaped like CPM-Bee's `pack_batch` output: each row holds spans
    (instances), each span a main sample (id 0) and in-context samples (ids 1..), each
    sample segments with a num_segments^2 block of segment relations at its offset;
    answer segments are not context; rows end in zero padding after `length`."""
    rng = np.random.default_rng(seed)
    per_token = [k for k in BATCH_KEYS if k not in ("length", "segment_rel", "ext_table_ids", "ext_table_sub")]
    cols = {k: np.zeros((batch, seqlen), dtype=np.int32) for k in per_token}
    lengths, rels, ext = [], [], {}
    for row in range(batch):
        target = seqlen if row == 0 else int(rng.integers(seqlen // 2, seqlen))
        pos, rel, span_id = 0, [], 0
        while True:
            span_tokens = []  # (sample_id, nseg, seg, offset, context)
            for sample_id in range(int(rng.integers(1, 4))):
                nseg = int(rng.integers(1, 5))
                block = rng.integers(2, config.position_bias_num_segment_buckets + 1, size=(nseg, nseg))
                np.fill_diagonal(block, 0)
                offset = len(rel)
                rel.extend(block.ravel().tolist())
                for seg in range(nseg):
                    is_answer = sample_id == 0 and seg == nseg - 1 and nseg > 1
                    span_tokens += [(sample_id, nseg, seg, offset, not is_answer)] * int(rng.integers(1, 7))
            if pos + len(span_tokens) > target:
                break
            for i, (sample_id, nseg, seg, offset, ctx) in enumerate(span_tokens, start=pos):
                sub = int(rng.integers(1, 4)) if rng.random() < 0.1 else 0
                token = int(rng.integers(0, config.vocab_size))
                if sub:
                    ext.setdefault((token, sub), len(ext))
                values = dict(
                    input=token, input_sub=sub, context=ctx, sample_ids=sample_id, num_segments=nseg,
                    segment=seg, segment_rel_offset=offset, span=span_id,
                )  # fmt: skip
                for key, value in values.items():
                    cols[key][row, i] = value
            pos += len(span_tokens)
            span_id += 1
        lengths.append(pos)
        rels.append(rel)
    segment_rel = np.zeros((batch, max(map(len, rels))), dtype=np.int32)
    for row, rel in enumerate(rels):
        segment_rel[row, : len(rel)] = rel
    ext_items = sorted(ext, key=ext.get) or [(0, 1)]  # CPM-Bee's placeholder entry when empty
    out = {k: torch.from_numpy(v) for k, v in cols.items()}
    out["context"] = out["context"].bool()
    out["length"] = torch.tensor(lengths, dtype=torch.int32)
    out["segment_rel"] = torch.from_numpy(segment_rel)
    out["ext_table_ids"] = torch.tensor([t for t, _ in ext_items], dtype=torch.int32)
    out["ext_table_sub"] = torch.tensor([s for _, s in ext_items], dtype=torch.int32)
    return {k: out[k] for k in BATCH_KEYS}


def quantized_weights(model: CPMBee) -> dict[str, tuple[np.ndarray, int]]:
    """Each weight as int8 codes and a power-of-two exponent: codes * 2**-exp is exact in
    float32, so a fixture stores the weights in a quarter of the bytes and loses nothing."""
    out = {}
    for name, value in to_cpm_live_state_dict(model).items():
        peak = float(value.abs().max())
        exp = math.floor(math.log2(127 / peak)) if peak > 0 else 0
        out[name] = (torch.round(value * 2.0**exp).clamp(-127, 127).to(torch.int8).numpy(), exp)
    return out


def dequantize(weights: dict[str, tuple[np.ndarray, int]]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(codes.astype(np.float32)) * 2.0**-exp for name, (codes, exp) in weights.items()}


def load_reference(path: Path):
    sys.path[:0] = [str(path), str(path / "stubs")]
    from cpm_live.models.bee import CPMBeeConfig
    from cpm_live.models.bee_torch import CPMBeeTorch

    def build(config: ModelConfig) -> torch.nn.Module:
        fields = config.model_dump()
        fields["half"] = False
        return CPMBeeTorch(CPMBeeConfig(**fields))

    return build


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    abs_err = float((ours - ref).abs().max())
    return abs_err, abs_err / float(ref.abs().max())


def compare(build_reference, config: ModelConfig, batch: dict[str, torch.Tensor], seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    ours = CPMBee(config)
    state = dequantize(quantized_weights(ours))
    ours.load_state_dict(state)
    ref = build_reference(config)
    ref.load_state_dict(state, strict=True)
    args = [batch[k] for k in BATCH_KEYS]
    results = {}
    for name, model in (("ours", ours), ("ref", ref)):
        model.eval()
        logits, hidden = model(*args)
        # weights the loss so no gradient is a plain sum (sum of logits has symmetric zeros)
        weights = torch.linspace(-1.0, 1.0, logits.numel()).view_as(logits)
        (logits * weights).sum().backward()
        results[name] = (logits.detach(), hidden.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    (lo, ho, go), (lr, hr, gr) = results["ours"], results["ref"]
    figures = dict(zip(("logits_abs", "logits_rel"), rel_error(lo, lr)))
    figures.update(zip(("hidden_abs", "hidden_rel"), rel_error(ho, hr)))
    figures["grad_rel_max"] = max(rel_error(go[k], gr[k])[1] for k in gr)
    figures["_ref_logits"] = lr
    return figures


def step_seconds(build_reference, config: ModelConfig, batch: dict[str, torch.Tensor], repeats: int = 7) -> dict[str, float]:
    """Best-of-`repeats` seconds of one forward + backward, ours and the reference on the
    same weights, runs interleaved (the best run is the one least disturbed by other load)."""
    torch.manual_seed(0)
    ours = CPMBee(config)
    ref = build_reference(config)
    ref.load_state_dict(ours.state_dict())
    args = [batch[k] for k in BATCH_KEYS]
    times: dict[str, list[float]] = {"ours": [], "ref": []}
    for _ in range(repeats + 1):  # the first round warms up
        for name, model in (("ours", ours), ("ref", ref)):
            start = time.perf_counter()
            model(*args)[0].float().pow(2).mean().backward()
            times[name].append(time.perf_counter() - start)
    return {name: min(t[1:]) for name, t in times.items()}


def write_golden(path: Path, build_reference) -> None:
    config, seed = golden_config(), 1234
    batch = random_batch(config, batch=2, seqlen=40, seed=seed)
    torch.manual_seed(seed)
    weights = quantized_weights(CPMBee(config))
    ref = build_reference(config)
    ref.load_state_dict(dequantize(weights), strict=True)
    ref.eval()
    with torch.no_grad():
        logits, _ = ref(*[batch[k] for k in BATCH_KEYS])
    arrays = {"config": np.array(config.model_dump_json()), "logits": logits.numpy()}
    arrays |= {f"batch/{k}": v.numpy() for k, v in batch.items()}
    for name, (codes, exp) in weights.items():
        arrays[f"weight/{name}"] = codes
        arrays[f"exp/{name}"] = np.array(exp, dtype=np.int32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): logits {tuple(logits.shape)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="scratch folder with cpm_live/ and stubs/")
    parser.add_argument("--write-golden", type=Path, help="write the test fixture here instead of comparing")
    args = parser.parse_args(argv)
    if not (args.reference / "cpm_live" / "models" / "bee_torch.py").is_file():
        print(f"SKIP: reference checkout {args.reference} not found (set CPM_BEE_MODEL_COMPARE)")
        return 0
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    build_reference = load_reference(args.reference)
    if args.write_golden:
        write_golden(args.write_golden, build_reference)
        return 0

    medium = ModelConfig(
        vocab_size=2000, dim_model=256, dim_ff=640, num_layers=4, num_heads=8, dim_head=32, half=False,
        mask_modules=[(False, False), (True, False), (False, True), (False, False)],
    )  # 256 position / segment buckets, max distance 2048: the published models' bucket settings
    cases = [
        ("tiny", preset("tiny"), 4, 64),
        ("golden (tiny, 512 vocab, masked modules)", golden_config(), 2, 40),
        ("medium (4 layers, dim 256, 256 buckets)", medium, 2, 512),
    ]
    worst = 0.0
    print(f"{'case':44} {'batch x len':>11} {'logits abs':>11} {'logits rel':>11} {'hidden rel':>11} {'grad rel':>11}")
    for name, config, batch_size, seqlen in cases:
        batch = random_batch(config, batch_size, seqlen, seed=7)
        f = compare(build_reference, config, batch, seed=7)
        worst = max(worst, f["logits_rel"])
        print(f"{name:44} {f'{batch_size} x {seqlen}':>11} {f['logits_abs']:11.2e} {f['logits_rel']:11.2e} "
              f"{f['hidden_rel']:11.2e} {f['grad_rel_max']:11.2e}")  # fmt: skip
    seconds = step_seconds(build_reference, medium, random_batch(medium, 2, 512, seed=7))
    print(f"forward+backward, medium 2 x 512, {torch.get_num_threads()} threads, best of 7: "
          f"ours {seconds['ours']:.3f} s, reference {seconds['ref']:.3f} s")  # fmt: skip
    verdict = "PASS" if worst <= 1e-5 else "FAIL"
    print(f"max logits relative error {worst:.2e} (anchor: <= 1e-5, float32 CPU) {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
