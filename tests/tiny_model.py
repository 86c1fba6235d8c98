"""A tiny causal LM and tokenizer made on the spot: random weights, a byte-level BPE trained
on the article's sentences. Saved with `save_pretrained`, so tests load it through the same
`--model FOLDER` path a user takes, in well under a second."""

from __future__ import annotations

from pathlib import Path

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, ARTICLE_PAIRS, article_text

SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"]


def _corpus() -> list[str]:
    words = [w for pair in ARTICLE_PAIRS for w in pair] + ["good", "bueno", "buena", "cat", "gato"]
    return list(ARTICLE_EXAMPLES) * 3 + [article_text(w, "bueno") for w in words] + [" ".join(words)] * 3


def make_tokenizer(prepend_bos: bool = False, gpt2_style: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    if prepend_bos:  # like Gemma and Llama: the tokenizer puts its own bos in front
        bos_id = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos_id)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if gpt2_style:  # one special token for bos and eos, and no pad token, as in GPT-2
        tok.add_special_tokens(["<|endoftext|>"])
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<unk>"
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
    )


def make_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    return LlamaForCausalLM(config)


def build(folder: Path, prepend_bos: bool = False, gpt2_style: bool = False) -> Path:
    tokenizer = make_tokenizer(prepend_bos, gpt2_style)
    model = make_model(len(tokenizer))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
