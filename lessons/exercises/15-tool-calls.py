"""Exercise for lesson 15 of causallm-inspect: train only the final answer after the tools.

Check your function:   causallm-inspect exercise 15 --check THIS_FILE
Watch its check:       causallm-inspect --labels-from THIS_FILE   (checked again on every save)

The check renders conversations with tool calls through two chat templates TRL ships with
{% generation %} markers (qwen3_training, what `--chat-template qwen3` uses, and
glm4moe_training), tokenizes them with the model's tokenizer, and compares your labels with
the mask strategy's under the `final` turn policy, on an example and on hidden
conversations: tool calls one after the other, a call with reasoning, an answer with no
tools, parallel calls, a call with text before it, and traces whose last assistant message
calls a tool. Per conversation it names the first positions that differ:
the message, its role and the part of it (reasoning, tool call, tool result).
"""


def final_answer_labels(example, tokenizer):
    """Return the labels that train only the final answer of one tokenized conversation.

    `example` is a dict:
      "input_ids"      the conversation rendered by its chat template, tokenized;
      "labels"         a copy of input_ids for you to change; "attention_mask" (all 1);
      "text"           the rendered conversation;
      "messages"       the conversation: dicts with "role" ("system", "user", "assistant",
                       "tool"), "content", and for an assistant message that calls tools
                       "tool_calls" (a list of {"type": "function", "function": {"name", "arguments"}}),
                       and maybe "reasoning_content";
      "message"        per token, the index in "messages" of the message it belongs to (the
                       template's header of a turn, "<|im_start|>assistant\\n", is the turn's);
      "roles"          per token: "system", "user", "assistant", "reasoning", "tool_call",
                       "tool_result", or "" outside every message;
      "assistant_mask" per token, 1 inside the template's {% generation %} blocks: what the
                       assistant writes in every turn (its reasoning, its tool calls, its answer,
                       and the end-of-turn that closes it), 0 elsewhere.
    `tokenizer` is the model's tokenizer.

    The task (the `final` turn policy): the final answer is the LAST assistant message that
    calls no tool. Train the tokens of that message that the template's generation block
    holds, the end-of-turn that closes it included (each label is the token's own id), and
    set every other label to -100: the user's words, the tool calls, the tools' results, and
    every other assistant message. A conversation where every assistant message calls a tool
    has no final answer: nothing is trained.

    The code below trains what TRL's assistant_only_loss trains: every assistant turn, tool
    calls included. Return a list of ints, one per token, or the example with example["labels"] set.
    """
    labels = example["labels"]
    for i, inside in enumerate(example["assistant_mask"]):
        if not inside:
            labels[i] = -100
        # TODO: keep only the final answer: the last assistant message without "tool_calls".
    return labels
