"""Exercise for lesson 8 of causallm-inspect: TRL's completion-only labels of a conversation.

Check your function:   causallm-inspect exercise 8 --check THIS_FILE
Watch it in the app:   causallm-inspect --labels-from THIS_FILE   (compared with the trl strategy)

The check asks TRL's SFTTrainer (completion_only_loss, the text cut at its last bos into
prompt and completion, as the app's trl strategy does) for the labels of the lesson's
two-turn example and of hidden ones (one turn, three turns, three turns with a tokenizer
that adds its own bos, an empty last answer), and lists, per example, the first positions
where your labels differ from TRL's (expected vs got).
"""


def make_labels(example, tokenizer):
    """Return the labels TRL's completion-only loss gives one tokenized conversation.

    `example` is a dict of lists: "input_ids", "attention_mask" (all 1), "labels" (a copy of
    input_ids for you to change) and "text", e.g.
    '\\n\\n### Human: How do you say "dog" in Spanish?\\n\\n### Assistant:<s> perro</s>'
    '\\n\\n### Human: And "water"?\\n\\n### Assistant:<s> agua</s>'.
    `tokenizer` is the model's tokenizer: tokenizer.bos_token_id, tokenizer.eos_token_id.

    The task: TRL is given the text as a prompt (everything through the LAST bos, the one
    right after the last "### Assistant:") and a completion (what follows it), and trains the
    completion only. So keep the last answer's tokens and the eos that closes it (each label
    is the token's own id), and set everything before them to -100: every human turn, the
    markers, every bos, and the earlier answers with their eos. An empty last answer leaves
    its eos alone to train. A tokenizer may put its own bos at position 0: it opens no answer.

    The code below gets one turn right: it masks through the first answer's bos and trains
    everything after it, the second human turn and the second bos included.
    Return a list of ints, one per token, or the example with example["labels"] set.
    """
    labels = example["labels"]
    training = False
    for i, token in enumerate(example["input_ids"]):
        if not training:
            labels[i] = -100
            training = token == tokenizer.bos_token_id and i > 0
        # TODO: with several answers, only the last one is TRL's completion: mask through the last bos.
    return labels
