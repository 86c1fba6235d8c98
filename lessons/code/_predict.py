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


# %% Learning epoch by epoch (the app's F5): p(true next token) at every position after every epoch


def p_true(lm, input_ids):
    """The probability the model gives the true next token, at every position that has one."""
    was_training = lm.training
    lm.eval()
    with torch.no_grad():
        probs = lm(input_ids=torch.tensor([input_ids], device=lm.device)).logits[0].float().softmax(-1)
    lm.train(was_training)
    return [float(probs[i, input_ids[i + 1]]) for i in range(len(input_ids) - 1)]


class EveryEpoch(TrainerCallback):
    """Epoch 0 (the untrained model), then after every epoch: p_true of the held-out example."""

    def __init__(self):
        self.input_ids = tokenizer(add_special_tokens(HELD_OUT + " " + HELD_OUT_ANSWER))["input_ids"]
        self.epochs = [p_true(model, self.input_ids)]

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.epochs.append(p_true(model, self.input_ids))


def print_learning(name, every_epoch):
    """A line per epoch, a shade per position (' ░▒▓█' by fifths of p; ^ the answer), and the means."""
    answer_start = len(tokenizer(add_special_tokens(HELD_OUT, final_eos=False))["input_ids"]) - 1
    for epoch, ps in enumerate(every_epoch.epochs):
        print(f"epoch {epoch:>3} |{''.join(' ░▒▓█'[min(4, int(p * 5))] for p in ps)}·|")
    print("answer    |" + " " * answer_start + "^" * (len(ps) - answer_start) + " |")

    def mean(values):
        return sum(values) / len(values)

    first, last = every_epoch.epochs[0], every_epoch.epochs[-1]
    print(
        f"{name}: prompt {mean(first[:answer_start]):.2f} -> {mean(last[:answer_start]):.2f}, "
        f"answer {mean(first[answer_start:]):.2f} -> {mean(last[answer_start:]):.2f} (epoch 0 -> {len(every_epoch.epochs) - 1})"
    )
