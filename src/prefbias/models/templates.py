"""Chat templates: the real models' own formats (for the tiny stand-ins) and the paper's
training formats (LLaMA-Factory), installed into a model directory from config.

Every template is a Jinja chat template as ``tokenizer.apply_chat_template`` runs it, so the same
text reaches training (``train/batching.render_prompt``), the ``hf`` and ``vllm`` generation
backends, the judge and HELM: the template lives in the model directory's tokenizer, and a trained
model saves the tokenizer it was trained with.

Stand-in templates (``STANDIN``), one per architecture, reproduce the behaviour of the real
checkpoints' templates that matters to us (special tokens, BOS, role names, generation prompt,
what they do with a system turn), written from the model cards' documented formats:

* ``chatml``     Qwen2.5: ``<|im_start|>role\\n...<|im_end|>\\n``.
* ``gemma``      gemma-7b-it: ``<bos>``; assistant is ``model``; **a system turn raises
  "System role not supported"**; roles must alternate user/assistant.
* ``gemma3``     gemma-3-12b-it: like gemma, but a system turn is folded into the first user turn
  (``system + "\\n\\n" + user``).
* ``mistral``    Mistral-7B-Instruct: ``<s>[INST] user [/INST]answer</s>``; roles must alternate
  user/assistant (a system turn raises).
* ``llama3``     Llama-3.1 (Nemotron-70B-Reward-HF): ``<|begin_of_text|>``, a system header with
  "Cutting Knowledge Date: December 2023" and "Today Date: 26 Jul 2024", then
  ``<|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>``.
* Falcon-7B-instruct has **no** chat template (``None``).

Paper templates (``PAPER``): LLaMA-Factory's ``falcon``, ``gemma`` and ``mistral`` templates as
they were in 2024, when saa-orpo trained with it (hiyouga/LLaMA-Factory
``src/llamafactory/data/template.py`` at 67d2eb6b, 2024-07-01; unchanged for these three through
2024-12). In those, a system message is written raw in front of the first user turn (after the
BOS), never as a role of its own, so Gemma's refusal of the system role never triggers:

* ``lf2024_falcon``  ``{system}User: {q}\\nFalcon:{a}`` and ``\\n`` before every later user turn.
* ``lf2024_gemma``   ``<bos>{system}<start_of_turn>user\\n{q}<end_of_turn>\\n``
  ``<start_of_turn>model\\n{a}`` and ``<end_of_turn>\\n`` before every later user turn.
* ``lf2024_mistral`` ``<s>{system}[INST] {q} [/INST]{a}</s>``.

(Later LLaMA-Factory versions fold Gemma's system text *into* the first user turn,
``user\\n{system}\\n\\n{q}``; that is ``lf2025_gemma``.)
"""

from __future__ import annotations

import json
from pathlib import Path

_ALTERNATE = ("{{ raise_exception('Conversation roles must alternate "
              "user/assistant/user/assistant/...') }}")

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

GEMMA = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" + _ALTERNATE + "{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

GEMMA3 = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" + _ALTERNATE + "{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

MISTRAL = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" + _ALTERNATE + "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = messages[0]['content'] | trim %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system_message = '' %}{% set loop_messages = messages %}{% endif %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{ 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{ system_message + '<|eot_id|>' }}"
    "{% for message in loop_messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

STANDIN: dict[str, str | None] = {"chatml": CHATML, "gemma": GEMMA, "gemma3": GEMMA3,
                                  "mistral": MISTRAL, "llama3": LLAMA3, "falcon": None}


def _lf2024(prefix: str, user: str, assistant_end: str, separator: str) -> str:
    """LLaMA-Factory (2024) ``Template``: prefix + raw system on turn 0, ``separator`` before
    every user turn after the first, user slot, then the assistant content (+ ``assistant_end``)."""
    return (
        prefix
        + "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}"
        "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}"
        "{% endif %}"
        "{% for message in loop_messages %}"
        "{% if message['role'] == 'user' %}"
        "{% if not loop.first %}{{ '" + separator + "' }}{% endif %}"
        "{{ " + user + " }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content']" + assistant_end + " }}"
        "{% else %}{{ raise_exception('Unexpected role: ' + message['role']) }}{% endif %}"
        "{% endfor %}"
    )


LF2024_FALCON = _lf2024("", "'User: ' + message['content'] + '\\nFalcon:'", "", "\\n")
LF2024_GEMMA = _lf2024(
    "{{ bos_token }}",
    "'<start_of_turn>user\\n' + message['content'] + '<end_of_turn>\\n<start_of_turn>model\\n'",
    "", "<end_of_turn>\\n")
LF2024_MISTRAL = _lf2024("{{ bos_token }}", "'[INST] ' + message['content'] + ' [/INST]'",
                         " + eos_token", "")
LF2025_GEMMA = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_text = messages[0]['content'] + '\\n\\n' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system_text = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ '<start_of_turn>user\\n' + (system_text if loop.first else '') + message['content'] "
    "+ '<end_of_turn>\\n<start_of_turn>model\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + '<end_of_turn>\\n' }}"
    "{% else %}{{ raise_exception('Unexpected role: ' + message['role']) }}{% endif %}"
    "{% endfor %}"
)

PAPER: dict[str, str] = {"lf2024_falcon": LF2024_FALCON, "lf2024_gemma": LF2024_GEMMA,
                         "lf2024_mistral": LF2024_MISTRAL, "lf2025_gemma": LF2025_GEMMA}


def get_template(name: str) -> str:
    if name not in PAPER:
        raise KeyError(f"unknown chat template {name!r} (known: {', '.join(sorted(PAPER))})")
    return PAPER[name]


def install_template(model_dir: str | Path, name: str) -> None:
    """Make template ``name`` the chat template of the tokenizer saved in ``model_dir``
    (``tokenizer_config.json``'s ``chat_template``; a ``chat_template.jinja`` beside it, which
    transformers would prefer, is replaced too)."""
    template = get_template(name)
    d = Path(model_dir)
    cfg_path = d / "tokenizer_config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path}: no tokenizer_config.json to install the chat "
                                f"template {name!r} into")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["chat_template"] = template
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    jinja = d / "chat_template.jinja"
    if jinja.exists():
        jinja.write_text(template, encoding="utf-8")
    cj = d / "chat_template.json"  # processor-style template file (gemma-3)
    if cj.exists():
        cj.write_text(json.dumps({"chat_template": template}), encoding="utf-8")
