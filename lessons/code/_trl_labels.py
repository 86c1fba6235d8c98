# %% TRL today: SFTTrainer on prompt/completion rows with completion_only_loss=True
import tempfile

import datasets
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

datasets.disable_progress_bars()


def trl_labels(texts):
    """(input_ids, labels) of each formatted text, as TRL's own collator hands them to the model.
    The prompt is the text through the last bos, the completion the rest."""
    cut = [t.rindex(tokenizer.bos_token) + len(tokenizer.bos_token) for t in texts]
    dataset = Dataset.from_dict(
        {"prompt": [t[:c] for t, c in zip(texts, cut)], "completion": [t[c:] for t, c in zip(texts, cut)]}
    )
    lm = copy.deepcopy(model)  # making an SFTTrainer patches the model's forward: keep the original clean
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=1,
            learning_rate=args.lr,
            num_train_epochs=args.epochs,
            lr_scheduler_type="constant",
            seed=args.seed,
            report_to="none",
            use_cpu=args.device == "cpu",
            completion_only_loss=True,  # the default for prompt/completion data, said out loud
            max_length=None,
            packing=False,
            activation_checkpointing=False,
        )
        trainer = SFTTrainer(model=lm, args=config, train_dataset=dataset, processing_class=tokenizer)
        out = []
        for i in range(len(texts)):
            batch = trainer.data_collator([trainer.train_dataset[i]])
            out.append((batch["input_ids"][0].tolist(), batch["labels"][0].tolist()))
    return out
