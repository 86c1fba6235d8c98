"""Exercise for lesson 11 of causallm-inspect: the labels of a packed row, as TRL's collator makes them.

Check your function:   causallm-inspect exercise 11 --check THIS_FILE
Watch it in the app:   causallm-inspect --labels-from THIS_FILE   (checked on every save)

The check packs examples with TRL's SFTTrainer (packing_strategy bfd and bfd_split, so
padding-free rows: no attention_mask, position_ids restarting at each example), calls your
function once per packed row, and compares your labels with the labels TRL's collator gives
that row. Some rows are hidden: an answer cut in its middle by bfd_split, a piece of one token.
"""


def packed_labels(example, tokenizer):
    """Return the labels of one packed row: several examples one after the other.

    `example` is a dict of lists, one entry per token of the row:
      "input_ids"        the token ids of every example packed in the row, one after the other;
      "position_ids"     each token's position within its own example: 0 where an example starts;
      "seq_lengths"      how many tokens each example (or piece of one) has, in order;
                         they add up to the row's length;
      "completion_mask"  1 for a token of an answer (TRL's completion: the answer and its eos),
                         0 for a prompt token;
      "labels"           a copy of input_ids for you to change;
      "attention_mask"   all 1 (the row is padding-free);
      "text"             the row decoded, for printing.
    `tokenizer` is the model's tokenizer.

    The task: a label of -100 is not scored. Train (keep the token's own id) every completion
    token, mask (-100) every prompt token, as completion_only_loss does; and mask the first
    token of every example in the row: the token before it belongs to another example, so
    nothing may be trained to predict it. A piece cut from an answer starts a new example too.

    Return a list of ints, one per token, or the example with example["labels"] set.
    """
    labels = example["labels"]
    # TODO: set labels[i] = -100 where the docstring says.
    return labels
