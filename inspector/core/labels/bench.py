"""What the label process costs: the article's label function on the examples, in that process
and in this one (`causallm-inspect bench --label-process`).

Both sides do the same work: tokenize every example, call the function, check its labels.
The label process answers all examples in one request, so its cost over in-process is one
round trip (and, on the first call, the process's start and the tokenizer's hand-over).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import FormattedExample

TARGET_RATIO = 2.0  # the label process may take at most twice the in-process time, warm

# The article's create_special_mask in the (example, tokenizer) form, the bos a tokenizer
# prepends kept masked: the function a learner writes in lesson 4.
ARTICLE_FUNCTION = """
def make_labels(example, tokenizer):
    human_text = True
    for idx, tok_id in enumerate(example["labels"]):
        if human_text:
            example["labels"][idx] = -100
            if tok_id == tokenizer.bos_token_id and idx > 0:
                human_text = False
        elif tok_id == tokenizer.eos_token_id:
            human_text = True
    return example
"""


@dataclass
class LabelBench:
    examples: int
    repeats: int
    first_call_s: float  # the label process's first request: its start, the tokenizer, the call
    in_process_s: float  # median over the repeats: every example labelled in this process
    label_process_s: float  # the same in the label process, warm
    same_labels: bool

    @property
    def ratio(self) -> float:
        return self.label_process_s / self.in_process_s if self.in_process_s > 0 else float("inf")

    @property
    def met(self) -> bool:
        return self.same_labels and self.ratio <= TARGET_RATIO

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "target_ratio": TARGET_RATIO, "met": self.met}


def bench_labels(
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    *,
    repeats: int = 20,
    function_text: str = ARTICLE_FUNCTION,
    sandbox: Any = None,
) -> LabelBench:
    """Time `function_text`'s labels of `examples` in this process and in the label process."""
    from inspector.core.labels.process.parent import load_label_function
    from inspector.core.labels.process.protocol import LabelSource
    from inspector.core.labels.process.sandbox import Sandbox
    from inspector.core.labels.process.worker import run_label_file  # the same work, in this process

    with tempfile.TemporaryDirectory(prefix="causallm-inspect-bench-") as folder:
        path = Path(folder) / "article_mask.py"
        path.write_text(function_text, encoding="utf-8")
        local = run_label_file(LabelSource(path), function_text)
        box = sandbox or Sandbox()
        try:
            started = time.perf_counter()
            remote = load_label_function(str(path), sandbox=box)
            first = remote.labeled_many(examples, tokenizer)
            first_call = time.perf_counter() - started

            def in_process() -> list[Any]:
                return [local.labeled(fe, tokenizer, index=i) for i, fe in enumerate(examples)]

            here, there = [], []
            for _ in range(repeats):  # interleaved, so that both see the same load
                t = time.perf_counter()
                mine = in_process()
                here.append(time.perf_counter() - t)
                t = time.perf_counter()
                theirs = remote.labeled_many(examples, tokenizer)
                there.append(time.perf_counter() - t)
            same = [ex.labels for ex in mine] == [ex.labels for ex in theirs] == [ex.labels for ex in first]
        finally:
            if sandbox is None:
                box.close()
    return LabelBench(len(examples), repeats, first_call, statistics.median(here), statistics.median(there), same)


def format_label_bench(b: LabelBench) -> str:
    verdict = "met" if b.met else "NOT met"
    return "\n".join(
        [
            f"the article's label function on {b.examples} examples (median of {b.repeats}):",
            f"  in this process     {b.in_process_s * 1000:8.2f} ms",
            f"  in the label process{b.label_process_s * 1000:8.2f} ms  ({b.ratio:.2f}x; target at most {TARGET_RATIO:g}x: {verdict})",
            f"  first call          {b.first_call_s * 1000:8.0f} ms  (the process starts, gets the tokenizer, answers)",
            f"  same labels: {'yes' if b.same_labels else 'NO'}",
        ]
    )
