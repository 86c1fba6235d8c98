# %% Training as the app trains: the Hugging Face Trainer, one example per step
import tempfile

import datasets
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, GenerationConfig, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

datasets.disable_progress_bars()


def greedy(lm, prompt_ids, max_new_tokens=8):
    """Greedy continuation of a prompt, special tokens kept so that a learned eos shows."""
    was_training = lm.training
    lm.eval()
    ids = torch.tensor([prompt_ids], device=lm.device)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.no_grad():
        out = lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    lm.train(was_training)
    return tokenizer.decode(out[0, ids.shape[1] :].tolist())


HELD_OUT_IDS = tokenizer(add_special_tokens(HELD_OUT, final_eos=False))["input_ids"]


class HeldOut(TrainerCallback):
    """After every epoch: the mean loss of its steps and the greedy answer to the held-out prompt."""

    def __init__(self, max_new_tokens=8):
        self.max_new_tokens, self.losses, self.answers = max_new_tokens, [], []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        answer = greedy(model, HELD_OUT_IDS, self.max_new_tokens)
        loss = sum(self.losses) / max(1, len(self.losses))
        self.losses = []
        self.answers.append(answer)
        print(f"epoch {round(state.epoch):>3}  loss {loss:8.4f}  held-out: {answer!r}", flush=True)


def rows_for(labels_of):
    """One dataset row per example: input_ids, attention_mask, and the labels `labels_of` makes."""
    rows = []
    for example in EXAMPLES:
        ids = tokenizer(add_special_tokens(example))["input_ids"]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels_of(ids)})
    return rows


def make_trainer(lm, rows, output_dir, callbacks=(), trainer_class=Trainer, epochs=None):
    arguments = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=1,  # the article's choice: nothing is padded
        gradient_accumulation_steps=1,
        learning_rate=args.lr,
        num_train_epochs=epochs or args.epochs,
        lr_scheduler_type="constant",
        warmup_steps=0,
        seed=args.seed,
        optim="adamw_torch_fused",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=args.device == "cpu",
        dataloader_num_workers=0,
    )
    trainer = trainer_class(
        model=lm,
        args=arguments,
        train_dataset=Dataset.from_list(rows),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # our callback prints; the Trainer's own would too
    return trainer


def train(labels_of, title, max_new_tokens=8, callbacks=()):
    """A copy of the untrained model, trained on the examples with these labels."""
    lm = copy.deepcopy(model)
    held_out = HeldOut(max_new_tokens)
    print(f"{title}: held-out prompt {add_special_tokens(HELD_OUT, final_eos=False)!r}")
    print(f"untrained answer: {greedy(lm, HELD_OUT_IDS, max_new_tokens)!r}")
    with tempfile.TemporaryDirectory() as tmp:
        make_trainer(lm, rows_for(labels_of), tmp, [held_out, *callbacks]).train()
    return lm, held_out.answers
