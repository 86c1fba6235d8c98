# %% The removed DataCollatorForCompletionOnlyLM, its algorithm on plain lists
#
# TRL removed the collator in 0.20 (importing it now fails); these lines do what its
# torch_call did: start from DataCollatorForLanguageModeling(mlm=False) labels (-100 where the
# id is the pad id), then mask by template positions.


def old_collator_labels(input_ids, response_ids, instruction_ids=None):
    labels = [-100 if t == tokenizer.pad_token_id else t for t in input_ids]
    n = len(labels)

    def starts(needle):
        return [i for i in range(n) if labels[i : i + len(needle)] == list(needle)]

    if instruction_ids is None:
        found = starts(response_ids)
        if not found:
            print("  warning: Could not find response key in the instance: every label of it is -100")
            return [-100] * n
        end = found[-1] + len(response_ids)
        return [-100] * end + labels[end:]
    response_ends = [i + len(response_ids) for i in starts(response_ids)]
    if not response_ends:
        print("  warning: Could not find response key in the instance: every label of it is -100")
        labels = [-100] * n
    human = starts(instruction_ids)
    if not human:
        print("  warning: Could not find instruction key in the instance: every label of it is -100")
        labels = [-100] * n
    if human and response_ends and human[0] > response_ends[0]:
        human = [0] + human
    for k, (start, end) in enumerate(zip(human, response_ends)):
        for i in range(0 if k == 0 else start, min(end, n)):
            labels[i] = -100
    if len(response_ends) < len(human):
        for i in range(human[-1], n):
            labels[i] = -100
    return labels
