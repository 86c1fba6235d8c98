"""Exercise for lesson 4 of causallm-inspect: mask the human part (the article's create_special_mask).

Check your function:   causallm-inspect exercise 4 --check THIS_FILE
Watch it in the app:   causallm-inspect --labels-from THIS_FILE

The check runs it on the lesson's examples and on hidden ones, and lists, per example,
the first positions where your labels differ from the reference (expected vs got).
"""


def make_labels(example, tokenizer):
    """Return the labels of one tokenized example, with the human part masked.

    `example` is a dict of lists: "input_ids" (the token ids), "attention_mask" (all 1),
    "labels" (a copy of input_ids for you to change) and "text" (the text that was tokenized),
    e.g. '\\n\\n### Human: How do you say "dog" in Spanish?\\n\\n### Assistant:<s> perro</s>'.
    `tokenizer` is the model's tokenizer: tokenizer.bos_token_id, tokenizer.eos_token_id.

    The task: a label of -100 is not scored. Set it from the start of the text through the
    bos that opens each answer (the one right after "### Assistant:"). Keep the answer's
    tokens and the eos that closes the answer as they are (each label is the token's own id:
    the model shifts them itself). After that eos a human turn starts: mask it again.

    Return a list of ints, one per token, or the example with example["labels"] set.
    """
    labels = example["labels"]
    # TODO: set labels[i] = -100 for the human part, as the docstring says.
    return labels
