"""Exercise for lesson 13 of causallm-inspect: each label's weight in one optimizer step.

Check your function:   causallm-inspect exercise 13 --check THIS_FILE
Watch it in the app:   causallm-inspect --labels-from THIS_FILE   (checked on every save)

The check builds optimizer steps with TRL's SFTTrainer (gradient accumulation, simulated
devices, padding, packing), calls your function once per step, and compares your weights
with the weights the Trainer's own loss gives each label, read off its gradient. Some steps
are hidden: uneven devices (3 of them), a micro-batch with no trained label (wrapped
packing), copy labels on padded rows, packed rows without padding (bfd) on 2 devices.
"""


def token_weights(micro_batches):
    """Return the weight of every label in one optimizer step.

    `micro_batches` is a list of dicts, every micro-batch of the step on every device
    (gradient_accumulation_steps of them per device); each holds plain nested lists:
      "labels"     one list per row: the token's own id where it is scored, -100 where not;
      "input_ids"  the rows' token ids;
      "rank"       the device it runs on (0, 1, ...), "micro_step" its place in the accumulation;
      and "attention_mask" or "position_ids" where the batch has them.
    The Trainer runs with average_tokens_across_devices on (its default).

    The task: the step's loss is the sum over every scored label of weight × its cross-entropy.
    Return, for each micro-batch in the same order, one list per row holding one float per
    label: that label's weight (0.0 where it is not scored). Remember that the model shifts the
    labels: the label at position 0 of a row is never predicted.
    """
    # TODO: give each scored label its weight in the step.
    return [[[0.0 for _ in row] for row in mb["labels"]] for mb in micro_batches]
