"""A stand-in ``vllm`` package for the worker-protocol tests (tests/test_generation_vllm.py): the
``LLM``/``SamplingParams`` surface the backend uses, answering ``out<prompt length>:<max_tokens>``
without a model. Not vLLM; the real one runs in tests/test_vllm_real.py."""

import json
import types

__version__ = "0.0-fake"


class SamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class _Tok:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt,
                            continue_final_message):
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [ord(c) for c in text]}


class LLM:
    def __init__(self, **kw):
        self.kw = kw
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=64))

    def get_tokenizer(self):
        return _Tok()

    def generate(self, prompts, params, use_tqdm=False):
        outs = []
        for i, p in enumerate(prompts):
            n = len(p["prompt_token_ids"])
            text = json.dumps(self.kw, sort_keys=True) if n == len("<user>kwargs<assistant>") \
                else f"out{n}:{params.kw['max_tokens']}"
            c = types.SimpleNamespace(text=text, token_ids=[1, 2, 3],
                                      finish_reason="length" if i % 2 else "stop")
            outs.append(types.SimpleNamespace(outputs=[c]))
        return outs
