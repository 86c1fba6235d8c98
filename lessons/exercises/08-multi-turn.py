"""Exercise for lesson 8 of causallm-inspect: multi-turn masking.

Check your function:   causallm-inspect exercise 8 --check THIS_FILE
Watch it in the app:   causallm-inspect --labels-from THIS_FILE

The check runs it on the lesson's two-turn example and on hidden ones, and lists, per
example, the first positions where your labels differ from the reference (expected vs got).
"""


def make_labels(example, tokenizer):
    """Return the labels of one tokenized conversation: every human turn masked, every answer trained.

    `example` is a dict of lists: "input_ids", "attention_mask" (all 1), "labels" (a copy of
    input_ids for you to change) and "text", e.g.
    '\\n\\n### Human: How do you say "dog" in Spanish?\\n\\n### Assistant:<s> perro</s>'
    '\\n\\n### Human: And "water"?\\n\\n### Assistant:<s> agua</s>'.
    `tokenizer` is the model's tokenizer: tokenizer.bos_token_id, tokenizer.eos_token_id.

    The task: each answer follows a bos (right after "### Assistant:") and ends with the eos
    that closes it. Train every answer with its closing eos (keep the token's own id), and
    set everything else to -100: each human turn, the markers, and each answer's bos.

    The code below gets one turn right: it masks through the first answer's bos and trains
    everything after it, the second human turn included.
    Return a list of ints, one per token, or the example with example["labels"] set.
    """
    labels = example["labels"]
    training = False
    for i, token in enumerate(example["input_ids"]):
        if not training:
            labels[i] = -100
            training = token == tokenizer.bos_token_id and i > 0
        # TODO: after the eos that closes an answer, mask again until the next answer's bos.
    return labels
