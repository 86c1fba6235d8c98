"""Reports as text: the data report over a whole dataset, and the label and prediction tables the commands print."""
