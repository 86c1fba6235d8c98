# %% Teacher forcing: one forward pass, the best guess for the next token at every position


def teacher_forced(lm, input_ids):
    lm.eval()
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([input_ids], device=lm.device)).logits[0]
    return logits.argmax(dim=-1).tolist()


def print_predictions(lm, name):
    """The held-out example with its answer, and what the model guesses after each of its tokens."""
    input_ids = tokenizer(add_special_tokens(HELD_OUT + " " + HELD_OUT_ANSWER))["input_ids"]
    guesses = teacher_forced(lm, input_ids)
    answer_start = len(tokenizer(add_special_tokens(HELD_OUT, final_eos=False))["input_ids"]) - 1
    right = [guesses[i] == input_ids[i + 1] for i in range(len(input_ids) - 1)]
    prompt, answer = right[:answer_start], right[answer_start:]
    print(
        f"{name}: prompt {sum(prompt)}/{len(prompt)} right ({sum(prompt) / len(prompt):.0%}),"
        f" answer {sum(answer)}/{len(answer)} right"
    )
    print(f"{name}: predicted, read as text: {''.join(show(g) for g in guesses)!r}")
