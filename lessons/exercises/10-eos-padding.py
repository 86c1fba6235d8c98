"""Exercise for lesson 10 of causallm-inspect: the eos that was masked (pad == eos).

Check your function:   causallm-inspect exercise 10 --check THIS_FILE

The check pads each example as a batch would, with pad == eos (the usual
tokenizer.pad_token = tokenizer.eos_token), and lists, per example, the first positions
where your labels differ from the reference (expected vs got).
"""


def make_labels(example, tokenizer):
    """Return the copy labels of one padded example, the padding masked and the eos kept.

    `example` is a dict of lists: "input_ids" (the tokens, then the padding), "attention_mask"
    (1 on the tokens, 0 on the padding), "labels" (a copy of input_ids) and "text".
    Here tokenizer.pad_token_id == tokenizer.eos_token_id.

    The task: every real token keeps its own id as its label (the copy strategy), the eos
    that ends the text included: it teaches the model to stop. Every padding position gets
    -100.

    The line below is what DataCollatorForLanguageModeling does. With pad == eos it masks
    the eos that ends the text as well.
    Return a list of ints, one per token, or the example with example["labels"] set.
    """
    # TODO: mask the padding without masking the eos that ends the text.
    return [-100 if token == tokenizer.pad_token_id else token for token in example["input_ids"]]
