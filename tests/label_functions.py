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
    from inspector.core.lessons.model import load_lessons

    f = tmp_path / f"{lesson_id}.py"
    f.write_text(code, encoding="utf-8")
    lessons = load_lessons()
    n, lesson = next((i + 1, les) for i, les in enumerate(lessons) if les.id == lesson_id)
    ex = EXERCISES[lesson_id]
    return check_exercise(ex, n, lesson, load_label_function(f"{f}:{ex.function}", kind=ex.function_kind), lm.tokenizer,
                          model=lm.model)
