"""Label functions the exercise tests check, as a user would write them."""

# The article's create_special_mask, adapted to the signature only.
ARTICLE = '''
def make_labels(example, tokenizer):
    mask_token_id = -100
    human_text = True
    for idx, tok_id in enumerate(example["labels"]):
        if human_text:
            example["labels"][idx] = mask_token_id
            if tok_id == tokenizer.bos_token_id:
                human_text = False
        elif not human_text and tok_id == tokenizer.eos_token_id:
            human_text = True
        elif not human_text:
            continue
    return example
'''
# ... and with the bos a tokenizer puts at position 0 left masked.
RIGHT = ARTICLE.replace("if tok_id == tokenizer.bos_token_id:", "if tok_id == tokenizer.bos_token_id and idx > 0:")
# Off by one: the eos that closes an answer is never trained.
NO_EOS = RIGHT.replace("human_text = True\n        elif", "human_text = True\n            example['labels'][idx] = -100\n        elif")
RAISES = "def make_labels(example, tokenizer):\n    return example['labels'][len(example['text'])]\n"
WRONG_LENGTH = "def make_labels(example, tokenizer):\n    return example['labels'] + [-100]\n"
# Exercise 10 by the attention_mask, which its example does not have.
PADDING = '''
def make_labels(example, tokenizer):
    return [t if m else -100 for t, m in zip(example["input_ids"], example["attention_mask"])]
'''
# Exercise 10 from the ids alone: the run of pad ids that ends the row, less its first (the text's eos).
PADDING_FROM_IDS = '''
def make_labels(example, tokenizer):
    ids = example["input_ids"]
    end = len(ids)
    while end > 1 and ids[end - 1] == tokenizer.pad_token_id and ids[end - 2] == tokenizer.pad_token_id:
        end -= 1
    return [t if i < end else -100 for i, t in enumerate(ids)]
'''
# Exercise 8: TRL's completion, what follows the last bos.
LAST_ANSWER = '''
def make_labels(example, tokenizer):
    ids = example["input_ids"]
    last = max(i for i, t in enumerate(ids) if t == tokenizer.bos_token_id)
    return [-100 if i <= last else t for i, t in enumerate(ids)]
'''


def check_code(tmp_path, code, lm, lesson_id="mask"):
    """The check of `exercise N` (the lesson of `lesson_id`) on a function written to a file."""
    from inspector.core.exercises.registry import EXERCISES, check_exercise
    from inspector.core.labels.process.parent import load_label_function

    f = tmp_path / f"{lesson_id}.py"
    f.write_text(code, encoding="utf-8")
    lessons = course()
    n, lesson = next((i + 1, les) for i, les in enumerate(lessons) if les.id == lesson_id)
    ex = EXERCISES[lesson_id]
    return check_exercise(ex, n, lesson, load_label_function(f"{f}:{ex.function}", kind=ex.function_kind), lm.tokenizer,
                          model=lm.model)


# Exercise 15: the final answer, the last assistant message that calls no tool, as the template's
# generation block holds it (assistant_mask), nothing where every assistant message calls a tool.
FINAL_ANSWER = '''
def final_answer_labels(example, tokenizer):
    answers = [i for i, m in enumerate(example["messages"]) if m["role"] == "assistant" and not m.get("tool_calls")]
    final = answers[-1] if answers else None
    return [t if inside and m == final else -100
            for t, inside, m in zip(example["input_ids"], example["assistant_mask"], example["message"])]
'''
# ... the last assistant message instead (the `last` policy): wrong where it calls a tool.
LAST_TURN = FINAL_ANSWER.replace(' and not m.get("tool_calls")', "")
# A planted bug: everything after the first tool result trained, the results themselves included.
AFTER_THE_TOOLS = '''
def final_answer_labels(example, tokenizer):
    roles = example["roles"]
    first = roles.index("tool_result") if "tool_result" in roles else 0
    return [t if i >= first else -100 for i, t in enumerate(example["input_ids"])]
'''
# The final answer without its reasoning (its think block masked).
NO_REASONING = FINAL_ANSWER.replace("if inside and m == final", "if inside and m == final and role != 'reasoning'").replace(
    "for t, inside, m in zip(example[\"input_ids\"], example[\"assistant_mask\"], example[\"message\"])",
    "for t, inside, m, role in zip(example[\"input_ids\"], example[\"assistant_mask\"], example[\"message\"], "
    "example[\"roles\"])")
# No final answer is an error here: max() of nothing.
NO_FINAL_RAISES = FINAL_ANSWER.replace("answers[-1] if answers else None", "max(answers)")

_STAND_INS = {  # lessons 14 and 15 until their files are merged from their own branch (lessons32)
    "reasoning": "---\nid: reasoning\ntitle: Reasoning traces\nview: labels\nstrategy: mask\n---\nStand-in.\n",
    "tool-calls": "---\nid: tool-calls\ntitle: Tool calls and agent turns\nview: labels\nstrategy: mask\n---\nStand-in.\n",
}


def course():
    """The lessons, with lesson 15 (`tool-calls`, exercise 15's) where its file is not there yet:
    lessons 14 and 15 are written on their own branch, this one only has their exercise."""
    from inspector.core.lessons.model import load_lessons, parse_lesson

    lessons = load_lessons()
    if any(les.id == "tool-calls" for les in lessons):
        return lessons
    return [*lessons, *(parse_lesson(text, f"stand-in for {i}") for i, text in _STAND_INS.items())]
