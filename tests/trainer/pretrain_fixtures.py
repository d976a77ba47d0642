"""Tiny, self-contained training inputs for the trainer tests: a vocabulary, two datasets, manifests, a run config."""

from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import uuid
from pathlib import Path

import yaml

from corpus.dataset.writer import build_dataset
from tokenization import tokenize_dataset
from trainer.launch import LaunchSpec, deepspeed_command, free_local_port, launch_environment

LAUNCH_TIMEOUT_S = 900  # the first launch on a machine also compiles DeepSpeed's CPU comm op

# a character vocabulary: CPM-Bee's required tokens, then printable ASCII as plain tokens
SPECIALS = ["<unk>", "<s>", "</s>", "<mask>", "</n>", "</_>", "<ans>", "<root>"]
WORDS = ["the", "bee", "hive", "honey", "flower", "queen", "worker", "summer", "field", "sun"]


def write_vocab(path: Path) -> Path:
    chars = [c for c in string.ascii_letters + string.digits + ".,:;!?'-()" if c not in "<>"]
    path.write_text("\n".join(SPECIALS + chars + WORDS) + "\n", encoding="utf-8")
    return path


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "."


def write_dataset(folder: Path, n: int, seed: int) -> Path:
    """`n` question/answer samples ({"input", "<ans>"}), the shape CPM-Bee trains on."""
    rng = random.Random(seed)
    with build_dataset(folder, "part-0000", block_size=1 << 12) as writer:
        for _ in range(n):
            writer.write({"input": sentence(rng), "<ans>": sentence(rng)})
    return folder


def write_option_dataset(folder: Path, n: int, seed: int) -> Path:
    """`n` multiple-choice samples shaped as CCPM's: options in a dict, the answer an option's label."""
    rng = random.Random(seed)
    with build_dataset(folder, "part-0000", block_size=1 << 12) as writer:
        for _ in range(n):
            options = {f"<option_{k}>": word for k, word in enumerate(rng.sample(WORDS, 3))}
            writer.write({"input": sentence(rng), "options": options, "question": "pick",
                          "<ans>": f"<option_{rng.randrange(3)}>"})  # fmt: skip
    return folder


def write_manifest(path: Path, datasets: dict[str, tuple[str, Path]]) -> Path:
    """datasets: dataset_name -> (task_name, folder)."""
    entries = [
        {"dataset_name": name, "task_name": task, "weight": 1.0, "path": str(folder), "incontext_weight": [1.0],
         "transforms": []}
        for name, (task, folder) in datasets.items()
    ]  # fmt: skip
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return path


def write_run(root: Path, **overrides: object) -> Path:
    """A complete tiny run under `root` (vocab, train/eval data, manifests) and its run.yaml.
    The chat dataset has token shards for the run (read from them), the others not (tokenized online)."""
    vocab = write_vocab(root / "vocab.txt")
    qa = write_dataset(root / "data" / "qa", 200, seed=1)
    chat = write_dataset(root / "data" / "chat", 200, seed=2)
    tokenize_dataset(chat, vocab, max_depth=8)
    held_out = write_dataset(root / "data" / "held_out", 60, seed=3)
    train = write_manifest(root / "train.json", {"qa": ("qa_task", qa), "chat": ("chat_task", chat)})
    evaluation = write_manifest(root / "eval.json", {"held_out": ("qa_task", held_out)})
    config = {
        "name": "tiny",
        "model": {"preset": "tiny"},
        "data": {"manifest": str(train), "eval_manifest": str(evaluation), "vocab": str(vocab),
                 "batch_size": 2, "max_length": 64, "max_depth": 8},
        "optimizer": {"lr": 1e-2, "grad_accumulation": 1},
        "schedule": {"kind": "cosine", "warmup_steps": 2},
        "checkpoint": {"dir": str(root / "ckpt"), "interval": 3},
        "eval": {"interval": 3, "batches": 2},
        "max_steps": 6,
        "seed": 7,
    }  # fmt: skip
    for dotted, value in overrides.items():
        node = config
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class Launch:
    """A finished launch: its exit code and output (read from files: a SIGKILLed rank's
    children may outlive it holding pipes open)."""

    def __init__(self, returncode: int, stdout: str, stderr: str, shm_left: list[str]) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.shm_left = shm_left  # DeepSpeed all-reduce segments of this launch left in /dev/shm


def launch(config: Path, resume: bool = False, entry: str = "pretrain", **env: str) -> Launch:
    """Run `deepspeed --num_gpus 2` on CPU for `config` and wait for it. A launch whose port
    was taken between choosing it and binding it (other sessions launch on this machine too)
    fails before it trains, and is started again on another port, at most twice."""
    for _ in range(2):
        result = _launch_once(config, resume, entry, env)
        if "EADDRINUSE" not in result.stderr:
            return result
    return _launch_once(config, resume, entry, env)


def _launch_once(config: Path, resume: bool, entry: str, env: dict[str, str]) -> Launch:
    port = free_local_port()  # other sessions launch DeepSpeed on this machine too
    command = deepspeed_command(LaunchSpec(config, entry, num_gpus=2, master_port=port, resume=resume))
    marker = uuid.uuid4().hex
    out, err = config.parent / f"launch-{port}.out", config.parent / f"launch-{port}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        code = subprocess.call(
            command, cwd=config.parent, env=launch_environment(cpu=True) | env | {"BEE_TEST_LAUNCH": marker},
            stdout=stdout, stderr=stderr, timeout=LAUNCH_TIMEOUT_S,
        )  # fmt: skip
    kill_leftovers(marker)
    shm_left = sorted(path.name for path in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))
    return Launch(code, out.read_text(), err.read_text(), shm_left)


def kill_leftovers(marker: str) -> None:
    """SIGKILL processes this launch started that outlived it (a killed rank's data workers)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"BEE_TEST_LAUNCH={marker}".encode() in environ.split(b"\0"):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
