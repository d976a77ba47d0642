"""Generation for CPM-Bee models: fill the `<ans>` of structured samples.

Drop-in for CPM-Bee's `cpm_live.generation.bee` (change the import, keep the calls):

    from trainer.generation import CPMBeeBeamSearch
    beam_search = CPMBeeBeamSearch(model, tokenizer)
    beam_search.generate([{"document": "今天天气是真的<mask_0>", "<ans>": {"<mask_0>": ""}}],
                         beam_size=3, max_length=100, repetition_penalty=1.1)
    # -> [{"document": ..., "<ans>": {"<mask_0>": "好"}}]  (the samples, filled in place)

`CPMBeeBeamSearch` gives the reference's answers token for token (same weights, float32;
tests/benchmarks/compare_generation_reference.py). `CPMBeeSampling` draws answers instead
(temperature, top-k, top-p, a seed), as the Hugging Face port's `do_sample=True` does.
Both decode incrementally with a key/value cache (`use_cache=False` recomputes everything,
same tokens), batch samples of different lengths (left padding), and run wherever the model
is (CPU, or GPU in float32/bfloat16/float16: cast the model before building the generator).
"""

from __future__ import annotations

from typing import Any

import torch

from tokenization.tokenizer import CPMBeeTokenizer
from trainer.generation.prompt import Batch, Prompt, build_batch, fill_answers, prepare
from trainer.generation.search import beam_search, sample
from trainer.generation.stepper import Stepper
from trainer.model import CPMBee

__all__ = ["CPMBeeBeamSearch", "CPMBeeGeneration", "CPMBeeSampling", "generate"]


class CPMBeeGeneration:
    """Shared part: samples -> batch -> decode -> answers written back.

    `model` is put in eval mode; inputs go to `device` (default: where the model's weights
    are). `in_context_samples` (one list per sample, complete samples with answers) are
    placed after each sample as CPM-Bee's in-context samples (sample ids 1, 2, ...); CPM-Bee's
    own generator offers no such argument."""

    def __init__(self, model: CPMBee, tokenizer: CPMBeeTokenizer, device: str | torch.device | None = None) -> None:
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else model.input_embedding.weight.device
        if self.device != model.input_embedding.weight.device:
            self.model = model.to(self.device)

    def prepare(self, data_list: list[Any], in_context_samples: list[list[Any]] | None = None) -> Batch:
        """Convert and batch the samples (raises tokenization.convert.SampleError naming the sample)."""
        if in_context_samples is not None and len(in_context_samples) != len(data_list):
            raise ValueError(
                f"in_context_samples has {len(in_context_samples)} lists for {len(data_list)} samples: give one per sample"
            )
        prompts: list[Prompt] = [
            prepare(self.tokenizer, data, in_context_samples[i] if in_context_samples else (), where=f"sample {i}")
            for i, data in enumerate(data_list)
        ]
        return build_batch(self.tokenizer, prompts, self.device)

    def generate(self, data_list: list[Any], in_context_samples: list[list[Any]] | None = None,
                 use_cache: bool = True, **kwargs: Any) -> list[Any]:  # fmt: skip
        """Fill every sample's `<ans>` (in place, as CPM-Bee does) and return `data_list`.

        A string `<ans>` becomes the answer text; a dict of slots gets each slot's text;
        a slot the decoder never reached (it ran out of `max_length`) becomes None."""
        if not data_list:
            return data_list
        batch, answers = self.decode(data_list, in_context_samples, use_cache, **kwargs)
        for data, prompt, table, answer in zip(data_list, batch.prompts, batch.decode_tables, answers):
            fill_answers(self.tokenizer, data, prompt, table, answer)
        return data_list

    def decode(self, data_list: list[Any], in_context_samples: list[list[Any]] | None = None,
               use_cache: bool = True, **kwargs: Any) -> tuple[Batch, list[list[tuple[int, int]]]]:  # fmt: skip
        """`generate` short of writing the answers: the batch and, per sample, the generated
        (token id, answer number) pairs (`</s>` tokens included), as CPM-Bee's `_decode` returns."""
        batch = self.prepare(data_list, in_context_samples)
        stepper = Stepper(self.model, batch, use_cache=use_cache, max_steps=kwargs.get("max_length", 100) + 2)
        with torch.inference_mode():
            return batch, self._decode(stepper, **kwargs)

    def _decode(self, stepper: Stepper, **kwargs: Any) -> list[list[tuple[int, int]]]:
        raise NotImplementedError


class CPMBeeBeamSearch(CPMBeeGeneration):
    """Beam search with CPM-Bee's arguments: `generate(data_list, beam_size=3, max_length=100,
    repetition_penalty=1.0, repetition_window=None)`.

    max_length: most tokens generated per sample (all answer slots together), `</s>` aside.
    repetition_penalty: CTRL penalty (>= 1.0; 1.0 none) on the tokens this sample generated,
    the last `repetition_window` of them when set."""

    def _decode(self, stepper: Stepper, beam_size: int = 3, max_length: int = 100, repetition_penalty: float = 1.0,
                repetition_window: int | None = None) -> list[list[tuple[int, int]]]:  # fmt: skip
        if beam_size < 1 or max_length < 1:
            raise ValueError(f"beam_size and max_length must be >= 1, got {beam_size} and {max_length}")
        return beam_search(stepper, self.tokenizer, beam_size, max_length, repetition_penalty, repetition_window)


class CPMBeeSampling(CPMBeeGeneration):
    """Sampling: `generate(data_list, max_length=100, temperature=1.0, top_k=0, top_p=1.0,
    repetition_penalty=1.0, repetition_window=None, seed=0)`.

    Each next token is drawn from softmax(logits / temperature) restricted to the `top_k` most
    likely (0: no limit) and to the smallest set reaching probability `top_p` (1.0: no limit).
    `seed` makes the draws reproducible for the same batch on the same device (None: torch's
    default generator). top_k=1 is greedy decoding."""

    def _decode(self, stepper: Stepper, max_length: int = 100, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, repetition_penalty: float = 1.0, repetition_window: int | None = None,
                seed: int | None = 0) -> list[list[tuple[int, int]]]:  # fmt: skip
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        generator = None
        if seed is not None:
            generator = torch.Generator(device=stepper.device)
            generator.manual_seed(seed)
        return sample(stepper, self.tokenizer, max_length, temperature, top_k, top_p, repetition_penalty,
                      repetition_window, generator)  # fmt: skip


def generate(model: CPMBee, tokenizer: CPMBeeTokenizer, data_list: list[Any], do_sample: bool = False,
             **kwargs: Any) -> list[Any]:  # fmt: skip
    """`CPMBeeSampling(...).generate(...)` when `do_sample`, else `CPMBeeBeamSearch`; kwargs go to
    `generate` (beam_size / temperature, top_k, top_p, seed, max_length, repetition_*,
    in_context_samples, use_cache)."""
    generator = CPMBeeSampling if do_sample else CPMBeeBeamSearch
    return generator(model, tokenizer).generate(data_list, **kwargs)
