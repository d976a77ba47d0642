"""Beam search (CPM-Bee's `CPMBeeBeamSearch._decode`, same hypotheses in the same order) and
sampling, over a `Stepper`.

Both walk each sample's answer segments in order: a row starts at the first answer segment
with `<s>` at position 0; a generated `</s>` ends the segment, and the row goes on to the next
one (with `<s>` again) or, after the last, is finished. The result of a sample is the list of
(token id, answer number) pairs it generated, `</s>` tokens included (`prompt.fill_answers`
turns them into text).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tokenization.tokenizer import CPMBeeTokenizer
from trainer.generation.logits import BANNED_LOGIT, apply_repetition_penalty, top_k_top_p_filter
from trainer.generation.prompt import Batch
from trainer.generation.stepper import Stepper

Answer = list[tuple[int, int]]  # (token id, answer number)


@dataclass(frozen=True)
class RowState:
    """Where one row is: answer segment index, tokens so far, and the token it feeds next."""

    idx: int
    ans: tuple[tuple[int, int], ...]
    token: int
    sub: int
    segment: int
    position: int


class BeamHypotheses:
    """The n best finished hypotheses of one sample, scored by sum of log-probs / length
    (CPM-Bee's BeamHypotheses with length_penalty 1 and no early stopping)."""

    def __init__(self, n_hyp: int) -> None:
        self.n_hyp = n_hyp
        self.hyp: list[tuple[float, Answer]] = []
        self.worst_score = 1e9

    def add(self, hyp: Answer, sum_logprobs: float) -> None:
        score = sum_logprobs / len(hyp)
        if len(self.hyp) < self.n_hyp or score > self.worst_score:
            self.hyp.append((score, hyp))
            if len(self.hyp) > self.n_hyp:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.hyp))
                del self.hyp[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        return len(self.hyp) >= self.n_hyp and self.worst_score >= best_sum_logprobs / cur_len

    def best(self) -> Answer:
        return max(self.hyp, key=lambda item: item[0])[1]


class _Rows:
    """Turns a chosen word into the next RowState (ext ids fed as family token + sub-id)."""

    def __init__(self, tokenizer: CPMBeeTokenizer, batch: Batch) -> None:
        self.eos, self.bos, self.vocab_size = tokenizer.eos_id, tokenizer.bos_id, tokenizer.vocab_size
        self.ext_ids = batch.ext_table_ids.tolist()
        self.ext_subs = batch.ext_table_sub.tolist()
        self.predict = [prompt.predict_segments for prompt in batch.prompts]

    def first(self, sample: int) -> RowState:
        return RowState(0, (), self.bos, 0, self.predict[sample][0][0], 0)

    def answer_number(self, sample: int, state: RowState) -> int:
        return self.predict[sample][state.idx][1]

    def ends(self, sample: int, state: RowState, word: int) -> bool:
        return word == self.eos and state.idx + 1 == len(self.predict[sample])

    def advance(self, sample: int, state: RowState, word: int) -> RowState:
        ans = state.ans + ((word, self.answer_number(sample, state)),)
        if word == self.eos:  # next answer segment
            return RowState(state.idx + 1, ans, self.bos, 0, self.predict[sample][state.idx + 1][0], 0)
        token, sub = word, 0
        if word >= self.vocab_size:
            token, sub = self.ext_ids[word - self.vocab_size], self.ext_subs[word - self.vocab_size]
        return RowState(state.idx, ans, token, sub, state.segment, state.position + 1)


def _feed(stepper: Stepper, states: list[RowState]) -> torch.Tensor:
    device = stepper.device
    columns = torch.tensor([(s.token, s.sub, s.position, s.segment) for s in states], dtype=torch.int32, device=device)
    return stepper.step(columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3])


def _processed_logits(
    stepper: Stepper, logits: torch.Tensor, repetition_penalty: float, repetition_window: int | None
) -> torch.Tensor:
    logits = logits.masked_fill(stepper.batch.banned.index_select(0, stepper.row_sample), BANNED_LOGIT)
    return apply_repetition_penalty(logits, stepper.fed_tokens(repetition_window), repetition_penalty)


def beam_search(
    stepper: Stepper,
    tokenizer: CPMBeeTokenizer,
    beam_size: int,
    max_length: int,
    repetition_penalty: float,
    repetition_window: int | None,
) -> list[Answer]:
    """CPM-Bee's beam search: `max_length` tokens at most (plus `</s>`), 2 x beam candidates
    per step, finished hypotheses scored by mean log-prob. Samples whose best finished
    hypothesis can no longer be beaten leave the batch."""
    batch = stepper.batch
    rows = _Rows(tokenizer, batch)
    max_length += 1  # room for </s>
    hyps = [BeamHypotheses(beam_size) for _ in range(batch.size)]
    active = list(range(batch.size))  # samples still decoding, beam_size consecutive rows each
    states = [rows.first(sample) for sample in active for _ in range(beam_size)]
    beam_scores = torch.zeros((batch.size, beam_size), device=stepper.device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    stepper.start(beam_size)
    for i in range(max_length + 1):
        logits = _processed_logits(stepper, _feed(stepper, states), repetition_penalty, repetition_window)
        width = logits.size(-1)
        next_scores = F.log_softmax(logits, dim=-1) + beam_scores[:, None]
        top_scores, top_words = torch.topk(next_scores.view(len(active), -1), 2 * beam_size, dim=1, largest=True, sorted=True)
        top_scores_list, top_words_list = top_scores.tolist(), top_words.tolist()

        kept, next_rows, next_scores_list, next_states = [], [], [], []
        for j, sample in enumerate(active):
            if hyps[sample].is_done(top_scores_list[j][0], i):
                continue
            chosen = []
            for index, value in zip(top_words_list[j], top_scores_list[j]):
                beam_id, word = divmod(index, width)
                state = states[j * beam_size + beam_id]
                if rows.ends(sample, state, word) or i == max_length:
                    hyps[sample].add(list(state.ans) + [(word, rows.answer_number(sample, state))], value)
                else:
                    chosen.append((rows.advance(sample, state, word), value, j * beam_size + beam_id))
                if len(chosen) == beam_size:
                    break
            if i == max_length:
                continue
            kept.append(sample)
            for state, value, row in chosen:
                next_states.append(state)
                next_scores_list.append(value)
                next_rows.append(row)
        if i == max_length or not kept:
            break
        active, states = kept, next_states
        beam_scores = torch.tensor(next_scores_list, dtype=torch.float, device=stepper.device)
        stepper.reorder(torch.tensor(next_rows, dtype=torch.long, device=stepper.device))
    return [hyp.best() for hyp in hyps]


def sample(
    stepper: Stepper,
    tokenizer: CPMBeeTokenizer,
    max_length: int,
    temperature: float,
    top_k: int,
    top_p: float,
    repetition_penalty: float,
    repetition_window: int | None,
    generator: torch.Generator,
) -> list[Answer]:
    """Draw each next token from the softmax of the processed logits / `temperature`, after
    top-k and top-p filtering; `max_length` tokens at most (plus `</s>`) per sample."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use top_k=1 for greedy decoding), got {temperature}")
    batch = stepper.batch
    rows = _Rows(tokenizer, batch)
    results: list[Answer] = [[] for _ in range(batch.size)]
    active = list(range(batch.size))
    states = [rows.first(s) for s in active]
    stepper.start(1)
    for i in range(max_length + 1):
        logits = _processed_logits(stepper, _feed(stepper, states), repetition_penalty, repetition_window)
        logits = top_k_top_p_filter(logits / temperature, top_k, top_p)
        words = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0].tolist()
        kept, next_rows, next_states = [], [], []
        for j, (sample_index, state, word) in enumerate(zip(active, states, words)):
            if rows.ends(sample_index, state, word) or i == max_length:
                results[sample_index] = list(state.ans) + [(word, rows.answer_number(sample_index, state))]
            else:
                kept.append(sample_index)
                next_states.append(rows.advance(sample_index, state, word))
                next_rows.append(j)
        if not kept:
            break
        active, states = kept, next_states
        stepper.reorder(torch.tensor(next_rows, dtype=torch.long, device=stepper.device))
    return results
