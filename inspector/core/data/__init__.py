"""The examples: reading data files, the article's chat format, conversations through a chat template, and tokens."""
