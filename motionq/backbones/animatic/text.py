"""The built-in model's text side: a word-level tokenizer over the sprite world's vocabulary and a
small UMT5 encoder (the same class Wan 2.1 uses), trained jointly with the transformer.

Measured choice: the sprite-world captions use a closed vocabulary of a few dozen words, so a
word-level tokenizer loses nothing and a 2-layer encoder is enough to bind colour/shape/motion
words to characters; a pretrained sentence encoder would add tens of MB for no gain here.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

SPECIAL = ["<pad>", "</s>", "<unk>"]


def build_tokenizer(vocabulary: list[str]) -> PreTrainedTokenizerFast:
    """A lower-casing, whitespace/punctuation-splitting word-level tokenizer; appends </s>."""
    words = SPECIAL + sorted({w.lower() for w in vocabulary} - set(SPECIAL))
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_max_length=64,
    )


def build_text_encoder(vocab_size: int, d_model: int = 128, layers: int = 2, seed: int = 0) -> UMT5EncoderModel:
    """A small randomly initialised UMT5 encoder."""
    torch.manual_seed(seed)
    cfg = UMT5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model,
        num_layers=layers, num_heads=4, relative_attention_num_buckets=16,
        relative_attention_max_distance=32, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    return UMT5EncoderModel(cfg)


def tokenize(tokenizer, prompts: list[str], max_sequence_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded and trimmed as `WanPipeline._get_t5_prompt_embeds` does."""
    inputs = tokenizer(
        prompts, padding="max_length", max_length=max_sequence_length, truncation=True,
        add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
    )
    return inputs.input_ids, inputs.attention_mask


def encode_tokens(text_encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Differentiable prompt embeddings from `tokenize`'s output (on the encoder's device)."""
    ids, mask = ids.to(text_encoder.device), mask.to(text_encoder.device)
    hidden = text_encoder(ids, mask).last_hidden_state
    # The pipeline zeroes everything after the real tokens.
    return hidden * mask.unsqueeze(-1).to(hidden.dtype)


def encode_prompts(tokenizer, text_encoder, prompts: list[str], max_sequence_length: int) -> torch.Tensor:
    """Differentiable copy of `WanPipeline._get_t5_prompt_embeds` (same padding and trimming), so
    training sees exactly the embeddings the pipeline will give at sampling time."""
    return encode_tokens(text_encoder, *tokenize(tokenizer, prompts, max_sequence_length))
