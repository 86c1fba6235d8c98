"""Pure logic of causallm-inspect: chat formatting, label strategies, training bursts,
teacher-forced predictions and model loading. Nothing here imports textual; torch and
transformers are imported inside the functions that need them."""
