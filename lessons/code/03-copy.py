# include: _training.py
# include: _predict.py
# %% Strategy 1: labels copied from input_ids, trained
first = tokenizer(add_special_tokens(EXAMPLES[0]))["input_ids"]
print_labels(first, list(first), "copy labels of example 1")
print_predictions(model, "untrained")
copy_epochs = EveryEpoch()
copy_model, answers = train(lambda ids: list(ids), "copy", callbacks=[copy_epochs])
print_predictions(copy_model, "copy")
print_learning("copy", copy_epochs)
