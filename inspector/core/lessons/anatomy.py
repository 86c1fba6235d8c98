"""What one training example is made of: the shift inside the model, the tokens, the padding,
and what each scored label weighs in its loss.

Computed on the model and tokenizer in use for the first lessons: the loss the model
returns next to the same loss computed by hand, the tokens of the formatted example with
its special tokens, one example's loss alone, right-padded and left-padded in a batch, and
(lesson 4) the weight 1/N of each of the N labels copy and mask score, with the gradient
that reaches the answer's logits under each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.tokens import IGNORE_INDEX, visible
from inspector.core.labels.strategies import LabeledExample, TokenRow, encode


@dataclass(frozen=True)
class ShiftPair:
    position: int  # the position whose output is scored
    reads: str  # the token at this position
    scored_on: str  # the token at position + 1: its label
    label: int  # labels[position + 1]; -100 when masked


@dataclass(frozen=True)
class ShiftView:
    pairs: tuple[ShiftPair, ...]
    model_loss: float  # model(input_ids, labels=labels).loss: the model shifts inside
    shifted_loss: float  # cross-entropy of logits[:-1] against labels[1:], computed here
    twice_loss: float  # labels shifted by hand as well: position i scored on token i+2
    scored: int  # positions that count in the loss


def shift_view(model: Any, lab: LabeledExample) -> ShiftView:
    """Position i is scored on token i+1: the model's own loss and the hand-shifted one agree."""
    import torch
    import torch.nn.functional as F

    ids = torch.tensor([lab.input_ids], device=model.device)
    labels = torch.tensor([lab.labels], device=model.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    finally:
        model.train(was_training)
    logits = out.logits[0].float()
    shifted = F.cross_entropy(logits[:-1], labels[0, 1:], ignore_index=IGNORE_INDEX)
    twice = F.cross_entropy(logits[:-2], labels[0, 2:], ignore_index=IGNORE_INDEX)
    rows = lab.rows
    pairs = tuple(ShiftPair(i, rows[i].text, rows[i + 1].text, rows[i + 1].label) for i in range(len(rows) - 1))
    return ShiftView(
        pairs=pairs,
        model_loss=float(out.loss),
        shifted_loss=float(shifted),
        twice_loss=float(twice),
        scored=sum(1 for p in pairs if p.label != IGNORE_INDEX),
    )


@dataclass(frozen=True)
class SpecialToken:
    role: str  # bos, eos or pad
    text: str | None
    id: int | None


@dataclass(frozen=True)
class TokenizeView:
    source: str  # the example as written, whitespace visible
    formatted: str  # after the article's add_special_tokens, whitespace visible
    rows: tuple[TokenRow, ...]
    specials: tuple[SpecialToken, ...]
    prepends_bos: bool  # the tokenizer puts its own bos in front of every text
    pad_is_eos: bool
    padding_side: str


def tokenize_view(tokenizer: Any, fe: FormattedExample) -> TokenizeView:
    from inspector.core.labels.strategies import make_rows

    ids, _ = encode(fe, tokenizer)
    specials = tuple(
        SpecialToken(role, getattr(tokenizer, f"{role}_token"), getattr(tokenizer, f"{role}_token_id"))
        for role in ("bos", "eos", "pad")
    )
    return TokenizeView(
        source=visible(fe.source),
        formatted=visible(fe.text),
        rows=make_rows(tokenizer, ids, ids),
        specials=specials,
        prepends_bos=bool(ids) and ids[0] == tokenizer.bos_token_id and not fe.text.startswith(fe.bos),
        pad_is_eos=tokenizer.pad_token_id == tokenizer.eos_token_id,
        padding_side=tokenizer.padding_side,
    )


@dataclass(frozen=True)
class PaddedRow:
    ids: tuple[int, ...]
    attention: tuple[int, ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class PaddingView:
    pads: int  # pad tokens the shorter example gets
    right: tuple[PaddedRow, PaddedRow]
    left: tuple[PaddedRow, PaddedRow]
    loss_alone: float  # the shorter example's loss, alone
    loss_right: float  # ... inside the right-padded batch
    loss_left: float  # ... inside the left-padded batch
    max_diff_right: float  # largest |logit difference| at its real tokens, vs alone
    max_diff_left: float
    scored_alone: int  # positions whose next label counts in the loss
    scored_right: int
    scored_left: int


def _pad(ids: Sequence[int], labels: Sequence[int], length: int, pad_id: int, side: str) -> PaddedRow:
    n = length - len(ids)
    if side == "right":
        return PaddedRow(tuple(ids) + (pad_id,) * n, (1,) * len(ids) + (0,) * n, tuple(labels) + (IGNORE_INDEX,) * n)
    return PaddedRow((pad_id,) * n + tuple(ids), (0,) * n + (1,) * len(ids), (IGNORE_INDEX,) * n + tuple(labels))


def padding_view(model: Any, tokenizer: Any, short: LabeledExample, long: LabeledExample) -> PaddingView:
    """The shorter example alone and in a batch with the longer one, padded on either side.

    Labels are copied (every real token trained) and -100 on the pads, as
    `DataCollatorForSeq2Seq(label_pad_token_id=-100)` pads them.
    """
    import torch
    import torch.nn.functional as F

    length = max(len(short.rows), len(long.rows))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    a_ids, b_ids = short.input_ids, long.input_ids

    def forward(rows: Sequence[PaddedRow]) -> Any:
        ids = torch.tensor([r.ids for r in rows], device=model.device)
        att = torch.tensor([r.attention for r in rows], device=model.device)
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=att).logits.float()

    def scored(labels: Sequence[int]) -> int:
        return sum(1 for x in labels[1:] if x != IGNORE_INDEX)

    def loss(logits: Any, labels: Sequence[int]) -> float:
        lab = torch.tensor(labels, device=logits.device)
        return float(F.cross_entropy(logits[:-1], lab[1:], ignore_index=IGNORE_INDEX))

    was_training = model.training
    model.eval()
    try:
        alone_row = PaddedRow(tuple(a_ids), (1,) * len(a_ids), tuple(a_ids))
        alone = forward([alone_row])[0]
        out = {}
        for side in ("right", "left"):
            rows = (_pad(a_ids, a_ids, length, pad_id, side), _pad(b_ids, b_ids, length, pad_id, side))
            logits = forward(rows)[0]
            n = length - len(a_ids)
            real = logits[: len(a_ids)] if side == "right" else logits[n:]
            out[side] = (rows, loss(logits, rows[0].labels), float((real - alone).abs().max()))
    finally:
        model.train(was_training)
    return PaddingView(
        pads=length - len(a_ids),
        right=out["right"][0],
        left=out["left"][0],
        loss_alone=loss(alone, a_ids),
        loss_right=out["right"][1],
        loss_left=out["left"][1],
        max_diff_right=out["right"][2],
        max_diff_left=out["left"][2],
        scored_alone=scored(a_ids),
        scored_right=scored(out["right"][0][0].labels),
        scored_left=scored(out["left"][0][0].labels),
    )


@dataclass(frozen=True)
class LossWeights:
    """One example's loss under several labellings: the mean over the labels it scores.

    Each scored label weighs 1/N of the loss, N the labels scored (positions 1.. whose label is
    not -100); `answer_grad` is measured: the norm of the loss's gradient at the logits that
    predict the positions the last labelling scores (the answer and its eos, under mask).
    """

    tokens: int
    scored: dict[str, int]  # labelling -> labels scored
    answer: tuple[int, ...]  # positions whose label the last labelling scores
    answer_grad: dict[str, float]  # labelling -> |d loss / d logits| over the rows predicting `answer`

    def weight(self, name: str) -> float:
        return 1.0 / self.scored[name] if self.scored[name] else 0.0


def loss_weights(model: Any, labs: Sequence[LabeledExample]) -> LossWeights:
    """The weight of each scored label under each labelling of one example (the same ids), and
    the gradient at the logits that predict the last labelling's scored positions, measured."""
    import torch
    import torch.nn.functional as F

    ids = labs[0].input_ids
    answer = tuple(i for i, x in enumerate(labs[-1].labels) if i > 0 and x != IGNORE_INDEX)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            tensor = torch.tensor([ids], device=model.device)
            logits = model(input_ids=tensor, attention_mask=torch.ones_like(tensor)).logits[0].float()
    finally:
        model.train(was_training)
    rows = [i - 1 for i in answer]  # the logits at position i - 1 predict the token at i
    grads: dict[str, float] = {}
    for lab in labs:
        if not lab.trained_tokens or not rows:
            grads[lab.strategy] = 0.0
            continue
        leaf = logits.detach().clone().requires_grad_(True)
        labels = torch.tensor(lab.labels, device=leaf.device)
        loss = F.cross_entropy(leaf[:-1], labels[1:], ignore_index=IGNORE_INDEX)  # the mean over scored labels
        (grad,) = torch.autograd.grad(loss, leaf)
        grads[lab.strategy] = float(grad[rows].norm())
    return LossWeights(len(ids), {lab.strategy: lab.trained_tokens for lab in labs}, answer, grads)
