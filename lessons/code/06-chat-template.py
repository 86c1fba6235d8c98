# %% The same data as chat messages, rendered by a chat template with generation markers
import re
import tempfile

import datasets
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

datasets.disable_progress_bars()

CHAT_TEMPLATE = {{chat_template}}
BARE_TEMPLATE = re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", CHAT_TEMPLATE)  # the markers removed

roles = {HUMAN: "user", ASSISTANT: "assistant"}
parts = re.split("(" + "|".join(map(re.escape, roles)) + ")", EXAMPLE)
messages = [{"role": roles[m], "content": c.strip()} for m, c in zip(parts[1::2], parts[2::2])]
print(f"model's own chat template: {'yes' if tokenizer.chat_template else 'none (tokenizer.chat_template is None)'}")
out = tokenizer.apply_chat_template(
    messages, chat_template=CHAT_TEMPLATE, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
)
ids, mask = out["input_ids"], out["assistant_masks"]
print("rendered: " + repr(tokenizer.apply_chat_template(messages, chat_template=CHAT_TEMPLATE, tokenize=False)))
print("tokens, ✓ where assistant_masks is 1: " + " ".join(show(t) + ("✓" if m else "") for t, m in zip(ids, mask)))
print(f"with {{% generation %}} markers: {sum(mask)} of {len(ids)} tokens in the assistant mask")
bare = tokenizer.apply_chat_template(
    messages, chat_template=BARE_TEMPLATE, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
)
print(f"without the markers: {sum(bare['assistant_masks'])} of {len(bare['input_ids'])}")

# %% TRL's assistant_only_loss=True, with and without the markers
for name, template in (("with markers", CHAT_TEMPLATE), ("without markers", BARE_TEMPLATE)):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp,
            assistant_only_loss=True,
            report_to="none",
            use_cpu=args.device == "cpu",
            max_length=None,
            packing=False,
            activation_checkpointing=False,
        )
        try:
            trainer = SFTTrainer(
                model=copy.deepcopy(model),
                args=config,
                processing_class=tok,
                train_dataset=Dataset.from_dict({"messages": [messages]}),
            )
        except ValueError as exc:
            print(f"TRL, {name}: raises ValueError: {str(exc).splitlines()[0]}")
            continue
        labels = trainer.data_collator([trainer.train_dataset[0]])["labels"][0].tolist()
        trained = [x for x in labels if x != -100]
        same = trained == [t for t, m in zip(ids, mask) if m]
        print(
            f"TRL, {name}: {len(trained)} labels trained, {'the same tokens as' if same else 'not the same as'} the mask"
        )
