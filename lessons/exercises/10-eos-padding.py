"""Exercise for lesson 10 of causallm-inspect: the eos that was masked (pad == eos).

Check your function:   causallm-inspect exercise 10 --check THIS_FILE

The check pads each example as a batch would, with pad == eos (the usual
tokenizer.pad_token = tokenizer.eos_token), on the lesson's examples and on hidden ones
(two turns, a tokenizer that adds its own bos, an empty answer, a row with no padding), and
lists, per example, the first positions where your labels differ from the reference
(expected vs got).
"""


def make_labels(example, tokenizer):
    """Return the copy labels of one padded example, the padding masked and the eos kept.

    `example` is a dict of lists: "input_ids" (the tokens, then the padding), "labels" (a copy
    of input_ids) and "text" (the text that was tokenized, without the padding). There is no
    "attention_mask": like transformers' DataCollatorForLanguageModeling, which builds the
    labels from input_ids alone, you see only the ids. Padding is appended at the end of the
    row, and here tokenizer.pad_token_id == tokenizer.eos_token_id.

    The task: every real token keeps its own id as its label (the copy strategy), the eos
    that ends the text included: it teaches the model to stop. Every padding position gets
    -100. Find the padding from the ids: the text ends with its eos, and the padding adds
    more of the same id after it.

    The line below is what transformers' DataCollatorForLanguageModeling does. With
    pad == eos it masks the eos that ends the text as well, and any other eos in the row.
    Return a list of ints, one per token, or the example with example["labels"] set.
    """
    # TODO: mask the padding without masking the eos that ends the text.
    return [-100 if token == tokenizer.pad_token_id else token for token in example["input_ids"]]
