"""Tiny random-initialised stand-ins of the paper's models, built offline.

Each stand-in uses the real architecture class of the model it replaces (``arch``: ``qwen2``
Qwen2.5, ``gemma3`` Gemma-3 (text), ``gemma`` Gemma-7B, ``mistral`` Mistral-7B, ``falcon``
Falcon-7B, ``llama`` Llama-3.1 / Nemotron-70B-Reward-HF) and a tokenizer with that model's special
tokens, BOS behaviour and a chat template that behaves like the real one
(:data:`prefbias.models.templates.STANDIN`: Gemma's refusal of a system turn, Mistral's
alternation check, Llama-3.1's system header, Falcon's missing template). ``task: causal_lm``
builds ``*ForCausalLM`` (the Nemotron reward stand-in is one: its reward is the logit of vocab id 0
at the position after the conversation, as for the real checkpoint); ``task: sequence_classifier``
builds ``*ForSequenceClassification`` with one label (other reward models). ``chat_template``
(optional) installs a paper template (:data:`prefbias.models.templates.PAPER`) on top, as
``fetch-model`` does for a real checkpoint.

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the given corpus using Qwen2's
split regex, ``ByteLevel(use_regex=False)`` and NFC, saved with ``tokenizer_class:
PreTrainedTokenizerFast`` so that ``AutoTokenizer`` loads exactly this pipeline for every
architecture.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefbias.io import atomic_path, write_json
from prefbias.models import templates

log = logging.getLogger(__name__)

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CHATML_TEMPLATE = templates.CHATML


@dataclass(frozen=True)
class Arch:
    """Tokenizer conventions of a real model family."""
    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str | None
    add_bos: bool                 # the real tokenizer prepends BOS when add_special_tokens=True
    template: str                 # key of templates.STANDIN
    gen_eos: tuple[str, ...]      # generation_config.eos_token_id of the real checkpoint


ARCHS: dict[str, Arch] = {
    "qwen2": Arch(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), None, "<|im_end|>",
                  "<|endoftext|>", False, "chatml", ("<|im_end|>",)),
    "gemma": Arch(("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
                  "<bos>", "<eos>", "<pad>", True, "gemma", ("<eos>",)),
    "gemma3": Arch(("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
                   "<bos>", "<eos>", "<pad>", True, "gemma3", ("<eos>", "<end_of_turn>")),
    "mistral": Arch(("<unk>", "<s>", "</s>", "[INST]", "[/INST]"), "<s>", "</s>", None, True,
                    "mistral", ("</s>",)),
    "falcon": Arch((">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<",
                    ">>COMMENT<<", ">>ANSWER<<", ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<",
                    ">>SUFFIX<<", ">>MIDDLE<<", "<|endoftext|>"), None, "<|endoftext|>", None,
                   False, "falcon", ("<|endoftext|>",)),
    "llama": Arch(("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>"), "<|begin_of_text|>",
                  "<|eot_id|>", None, True, "llama3",
                  ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")),
}

DEFAULTS: dict[str, Any] = {"seed": 0, "arch": "qwen2", "hidden_size": 64, "num_layers": 2,
                            "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128,
                            "vocab_size": 1024, "max_position_embeddings": 2048,
                            "task": "causal_lm"}
TASKS = ("causal_lm", "sequence_classifier")


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


def train_tokenizer(texts: Iterable[str], vocab_size: int, arch: str = "qwen2"):
    """Train a byte-level BPE tokenizer with the special tokens, BOS behaviour and stand-in chat
    template of ``arch`` and wrap it as ``PreTrainedTokenizerFast``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    a = ARCHS[arch]
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(a.specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    texts = list(texts) or ["hello world"]
    tok.train_from_iterator(texts, trainer=trainer)
    if a.add_bos:
        bos_id = tok.token_to_id(a.bos)
        tok.post_processor = TemplateProcessing(single=f"{a.bos} $A", pair=f"{a.bos} $A $B",
                                                special_tokens=[(a.bos, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=a.bos, eos_token=a.eos,
                                   pad_token=a.pad, unk_token=None,
                                   model_max_length=DEFAULTS["max_position_embeddings"])
    fast.chat_template = templates.STANDIN[a.template]
    return fast


def _config(arch: str, s: dict[str, Any], tokenizer):
    import transformers as tf

    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": tokenizer.bos_token_id}
    common = dict(vocab_size=len(tokenizer), hidden_size=s["hidden_size"],
                  num_hidden_layers=s["num_layers"], num_attention_heads=s["num_heads"],
                  max_position_embeddings=s["max_position_embeddings"], num_labels=1, **ids)
    head_dim = s["hidden_size"] // s["num_heads"]
    if arch == "qwen2":
        return tf.Qwen2Config(**common, intermediate_size=s["intermediate_size"],
                              num_key_value_heads=s["num_kv_heads"], rope_theta=1_000_000.0,
                              rms_norm_eps=1e-6, tie_word_embeddings=True)
    if arch == "gemma":
        return tf.GemmaConfig(**common, intermediate_size=s["intermediate_size"],
                              num_key_value_heads=s["num_kv_heads"], head_dim=head_dim)
    if arch == "gemma3":
        return tf.Gemma3TextConfig(**common, intermediate_size=s["intermediate_size"],
                                   num_key_value_heads=s["num_kv_heads"], head_dim=head_dim,
                                   query_pre_attn_scalar=head_dim, sliding_window=512)
    if arch == "mistral":
        return tf.MistralConfig(**common, intermediate_size=s["intermediate_size"],
                                num_key_value_heads=s["num_kv_heads"], sliding_window=None,
                                tie_word_embeddings=False)
    if arch == "falcon":  # falcon-7b layout: multi-query, parallel attention, no ALiBi
        common.pop("max_position_embeddings")
        return tf.FalconConfig(**common, multi_query=True, parallel_attn=True, alibi=False,
                               new_decoder_architecture=False, bias=False)
    if arch == "llama":
        return tf.LlamaConfig(**common, intermediate_size=s["intermediate_size"],
                              num_key_value_heads=s["num_kv_heads"], rope_theta=500_000.0,
                              rms_norm_eps=1e-5, tie_word_embeddings=False)
    raise ValueError(f"unknown tiny arch {arch!r} (known: {', '.join(ARCHS)})")


_CLASSES = {"qwen2": "Qwen2", "gemma": "Gemma", "gemma3": "Gemma3", "mistral": "Mistral",
            "falcon": "Falcon", "llama": "Llama"}


def model_class(arch: str, task: str):
    import transformers as tf

    if task not in TASKS:
        raise ValueError(f"unknown tiny task {task!r} (known: {', '.join(TASKS)})")
    prefix = _CLASSES[arch] + ("Text" if arch == "gemma3" and task != "causal_lm" else "")
    return getattr(tf, prefix + ("ForCausalLM" if task == "causal_lm"
                                 else "ForSequenceClassification"))


def build_tiny_model(out_dir: str | Path, spec: dict[str, Any],
                     corpus_texts: Iterable[str]) -> Path:
    """Build a random model of ``spec['arch']`` (causal LM, or a one-label sequence classifier
    if ``spec['task'] == 'sequence_classifier'``) with a tokenizer trained on ``corpus_texts``;
    written atomically to ``out_dir``."""
    import torch

    s = {**DEFAULTS, **{k: v for k, v in spec.items() if k != "source"}}
    arch, task = s["arch"], s["task"]
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r} (known: {', '.join(ARCHS)})")
    tokenizer = train_tokenizer(corpus_texts, int(s["vocab_size"]), arch)
    vocab = len(tokenizer)
    cfg = _config(arch, s, tokenizer)
    torch.manual_seed(int(s["seed"]))
    model = model_class(arch, task)(cfg)
    if task == "causal_lm":
        gen_eos = [tokenizer.convert_tokens_to_ids(t) for t in ARCHS[arch].gen_eos]
        model.generation_config.eos_token_id = gen_eos if len(gen_eos) > 1 else gen_eos[0]
        model.generation_config.pad_token_id = (tokenizer.pad_token_id
                                                if tokenizer.pad_token_id is not None
                                                else gen_eos[0])
        model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.eval()
    out = Path(out_dir)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _force_fast_class(tmp)
        if s.get("chat_template"):
            templates.install_template(tmp, s["chat_template"])
        write_json(tmp / "prefbias_model.json",
                   {"source": "tiny", "spec": s, "vocab_size": vocab,
                    "architecture": type(model).__name__,
                    "parameters": sum(p.numel() for p in model.parameters())})
    log.info("built tiny %s %s (%d parameters, vocab %d) at %s", arch, type(model).__name__,
             sum(p.numel() for p in model.parameters()), vocab, out)
    return out


def _force_fast_class(model_dir: Path) -> None:
    """``tokenizer_class: PreTrainedTokenizerFast``: AutoTokenizer then loads tokenizer.json as
    is, instead of the model type's own tokenizer class rebuilding its pre-tokenizer."""
    p = model_dir / "tokenizer_config.json"
    cfg = json.loads(p.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    p.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
