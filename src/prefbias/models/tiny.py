"""Tiny random-initialised Qwen2 models with a locally trained ChatML tokenizer (offline demo).

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the given corpus using Qwen2's
split regex, ``ByteLevel(use_regex=False)`` and NFC, so that it loads identically through
``PreTrainedTokenizerFast`` and through ``AutoTokenizer`` (which picks ``Qwen2Tokenizer`` for a
``model_type: qwen2`` folder and re-applies Qwen's pre-tokenizer/normalizer).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prefbias.io import atomic_path, write_json

log = logging.getLogger(__name__)

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML as Qwen2.5 instruct uses it, without the injected default system message.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

DEFAULTS: dict[str, Any] = {"seed": 0, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                            "num_kv_heads": 2, "intermediate_size": 128, "vocab_size": 1024,
                            "max_position_embeddings": 2048, "task": "causal_lm"}


def corpus_from_files(paths: Iterable[str | Path]) -> Iterator[str]:
    """Every string value in JSON/JSONL files (or the lines of text files)."""

    def strings(obj: Any) -> Iterator[str]:
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from strings(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from strings(v)

    for p in paths:
        p = Path(p)
        if p.suffix == ".gz":
            text = gzip.decompress(p.read_bytes()).decode("utf-8")
            kind = Path(p.stem).suffix
        else:
            text, kind = p.read_text(encoding="utf-8"), p.suffix
        if kind == ".json":
            yield from strings(json.loads(text))
        elif kind == ".jsonl":
            try:
                docs = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError:  # one pretty-printed document (HELM's boolq contrast set)
                docs = [json.loads(text)]
            for doc in docs:
                yield from strings(doc)
        else:
            yield from text.splitlines()


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a ChatML byte-level BPE tokenizer and wrap it as ``PreTrainedTokenizerFast``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    texts = list(texts) or ["hello world"]
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None,
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, model_max_length=DEFAULTS[
                                       "max_position_embeddings"])
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, spec: dict[str, Any],
                     corpus_texts: Iterable[str]) -> Path:
    """Build a random Qwen2 model (causal LM, or reward model if ``spec['task'] == 'reward'``)
    with a ChatML tokenizer trained on ``corpus_texts``; written atomically to ``out_dir``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    s = {**DEFAULTS, **{k: v for k, v in spec.items() if k != "source"}}
    tokenizer = train_tokenizer(corpus_texts, int(s["vocab_size"]))
    vocab = len(tokenizer)
    cfg = Qwen2Config(
        vocab_size=vocab, hidden_size=s["hidden_size"], intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_layers"], num_attention_heads=s["num_heads"],
        num_key_value_heads=s["num_kv_heads"], max_position_embeddings=s["max_position_embeddings"],
        rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, num_labels=1,
    )
    torch.manual_seed(int(s["seed"]))
    if s["task"] == "reward":
        model = Qwen2ForSequenceClassification(cfg)
    else:
        model = Qwen2ForCausalLM(cfg)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    out = Path(out_dir)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "prefbias_model.json",
                   {"source": "tiny", "spec": s, "vocab_size": vocab,
                    "parameters": sum(p.numel() for p in model.parameters())})
    log.info("built tiny %s model (%d parameters, vocab %d) at %s", s["task"],
             sum(p.numel() for p in model.parameters()), vocab, out)
    return out
