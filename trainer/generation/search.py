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
from trainer.generation.logits import apply_repetition_penalty, ban, banned_columns, draw, top_k_top_p_filter
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


class _LogitRules:
    """The per-sample rules of CPM-Bee's decoders, applied in place to each step's logits:
    banned tokens (ext ids of other samples, `<unk>` where the text had none) get
    BANNED_LOGIT, then the repetition penalty."""

    def __init__(self, batch: Batch, repetition_penalty: float, repetition_window: int | None) -> None:
        self.columns, self.valid = banned_columns(batch.banned)  # (B, K) each
        self.penalty, self.window = repetition_penalty, repetition_window

    def __call__(self, stepper: Stepper, logits: torch.Tensor) -> torch.Tensor:
        rows = stepper.row_sample
        ban(logits, self.columns.index_select(0, rows), self.valid.index_select(0, rows))
        return apply_repetition_penalty(logits, stepper.fed_tokens(self.window), self.penalty)


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
    rules = _LogitRules(batch, repetition_penalty, repetition_window)
    max_length += 1  # room for </s>
    hyps = [BeamHypotheses(beam_size) for _ in range(batch.size)]
    active = list(range(batch.size))  # samples still decoding, `per_sample` consecutive rows each
    # the beams of a sample start equal and CPM-Bee scores all but the first -1e9, so that
    # only the first one's words are ever chosen: the first step runs one row per sample
    per_sample = 1
    states = [rows.first(sample) for sample in active]
    beam_scores = torch.zeros(batch.size, device=stepper.device)
    stepper.start(per_sample)
    for i in range(max_length + 1):
        logits = rules(stepper, _feed(stepper, states))
        scores = F.log_softmax(logits, dim=-1)  # (N, V + E)
        # the best 2 x beam words of a sample are among the best 2 x beam of each of its rows
        # (adding the row's score keeps the order): no (N, V + E) sum, a short top-k after
        per_row = min(2 * beam_size, scores.size(-1))
        row_scores, row_words = torch.topk(scores, per_row, dim=1, largest=True, sorted=True)  # (N, per_row)
        candidates = (row_scores + beam_scores[:, None]).view(len(active), -1)  # (A, per_sample x per_row)
        top_scores, top_index = torch.topk(candidates, min(2 * beam_size, candidates.size(1)), dim=1, sorted=True)
        top_words = row_words.view(len(active), -1).gather(1, top_index)
        top_scores_list, top_words_list = top_scores.tolist(), top_words.tolist()
        top_beams_list = torch.div(top_index, per_row, rounding_mode="floor").tolist()

        kept, next_rows, next_scores_list, next_states = [], [], [], []
        for j, sample in enumerate(active):
            if hyps[sample].is_done(top_scores_list[j][0], i):
                continue
            chosen = []
            for beam_id, word, value in zip(top_beams_list[j], top_words_list[j], top_scores_list[j]):
                row = j * per_sample + beam_id
                state = states[row]
                if rows.ends(sample, state, word) or i == max_length:
                    hyps[sample].add(list(state.ans) + [(word, rows.answer_number(sample, state))], value)
                else:
                    chosen.append((rows.advance(sample, state, word), value, row))
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
        active, states, per_sample = kept, next_states, beam_size
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
    rules = _LogitRules(batch, repetition_penalty, repetition_window)
    results: list[Answer] = [[] for _ in range(batch.size)]
    active = list(range(batch.size))
    states = [rows.first(s) for s in active]
    stepper.start(1)
    for i in range(max_length + 1):
        logits = top_k_top_p_filter(rules(stepper, _feed(stepper, states)) / temperature, top_k, top_p)
        words = draw(logits, generator).tolist()
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
