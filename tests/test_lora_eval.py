"""ORPO+LoRA models are evaluated as trained (issue 22.4): every consumer sees base + adapter in
fp32, not a bf16 copy that rounds the update away.

The GPU training path is simulated on CPU: the frozen base is loaded in bf16 (as
``recipes._load_model`` does on CUDA), the adapter trains in fp32 at saa-orpo's lr 5e-7.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from prefbias.train import recipes, synthetic
from tests.support.sections import job_section

ROOT = Path(__file__).resolve().parents[1]
ORPO = job_section("orpo", {  # as a job receives it: schema defaults filled
    "cutoff_len": 128, "effective_batch_size": 4, "batch_size": 2, "lr": 5e-7, "epochs": 3,
    "lam": 0.1, "warmup_ratio": 0.0, "max_grad_norm": 1.0, "checkpoint_steps": 100,
    "optimizer": {"name": "adamw", "lr": 5e-7, "betas": [0.9, 0.999], "weight_decay": 0.0},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from prefbias.models.load import load_causal_lm

    d = tmp_path_factory.mktemp("lora")
    base = synthetic.build_model(d / "base")
    data = synthetic.write_setup(d / "data")
    mp = pytest.MonkeyPatch()
    # the frozen base in bf16, as on CUDA (recipes._load_model)
    mp.setattr(recipes, "_load_model",
               lambda init, *, lora: load_causal_lm(init, dtype=torch.bfloat16, device="cpu"))
    try:
        recipes.train_orpo(model_id="orpo-aligned-x-s0", init=str(base),
                           train=[str(data["prefs_train"])], spec=ORPO, seed=0,
                           out=str(d / "orpo"), metrics=str(d / "r" / "metrics.jsonl"),
                           summary=str(d / "r" / "summary.json"), ckpt=str(d / "ckpt"),
                           eval_examples=str(d / "r" / "ex.jsonl"))
    finally:
        mp.undo()
    return {"base": base, "orpo": d / "orpo"}


def _ids():
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, 100, (3, 24), generator=g)


@torch.no_grad()
def _logits(model) -> torch.Tensor:
    return model(input_ids=_ids()).logits.double()


@pytest.fixture(scope="module")
def reference(trained):
    """base (its bf16 training values) + adapter, PEFT unmerged, in fp32; and the base alone."""
    from peft import PeftModel

    from prefbias.models.load import load_causal_lm

    base = load_causal_lm(trained["base"], dtype=torch.bfloat16, device="cpu").float().eval()
    base_logits = _logits(base)
    peft = PeftModel.from_pretrained(base, trained["orpo"] / "adapter").eval()
    assert peft.peft_config["default"].r == 4 and not peft.base_model.model.training
    return {"base": base_logits, "exact": _logits(peft)}


def test_evaluated_model_is_base_plus_adapter_in_fp32(trained, reference):
    from prefbias.generation.hf_backend import HFBackend

    lm = HFBackend(str(trained["orpo"]), device="cpu").lm  # generation and sycophancy load this
    assert {p.dtype for p in lm.parameters()} == {torch.float32}
    got, exact, base = _logits(lm), reference["exact"], reference["base"]
    effect = (exact - base).norm()
    assert effect > 1e-4  # the lr-5e-7 update moves the logits (fp32 noise is ~1e-6 here)
    torch.testing.assert_close(got, exact, rtol=1e-5, atol=1e-5)
    # all of the update's effect, in its direction: a bf16 copy keeps ~0 of it at this lr
    kept = float(((got - base) * (exact - base)).sum() / effect**2)
    assert kept == pytest.approx(1.0, abs=0.02)
    assert float((got - exact).norm() / effect) < 0.02


def test_bf16_copy_loses_the_update(trained, reference):
    """What the old path served (merged weights stored/served in bf16): most of the update is gone.
    """
    from prefbias.models.load import load_causal_lm

    rounded = load_causal_lm(trained["orpo"], device="cpu")
    for p in rounded.parameters():
        p.data = p.data.to(torch.bfloat16).float()
    got, exact, base = _logits(rounded), reference["exact"], reference["base"]
    kept = float(((got - base) * (exact - base)).sum() / (exact - base).norm() ** 2)
    assert kept < 0.5


def test_every_consumer_loads_it_in_fp32(trained, tmp_path):
    from prefbias.generation.vllm_backend import llm_kwargs
    from prefbias.models.load import ModelLoadError, eval_dtype, load_causal_lm, recorded_dtype

    orpo = trained["orpo"]
    assert recorded_dtype(orpo) == "float32"
    assert (orpo / "adapter" / "adapter_config.json").is_file()
    # hf backend, judge, reward (models.load) and the HELM client all ask eval_dtype
    assert eval_dtype(orpo, "cuda") == torch.float32
    assert eval_dtype(trained["base"], "cuda") == torch.bfloat16
    assert eval_dtype(trained["base"], "cpu") == torch.float32
    with pytest.raises(ModelLoadError, match="float32"):
        load_causal_lm(orpo, dtype=torch.bfloat16, device="cpu")
    # vLLM: "auto" would cast the fp32 checkpoint to bf16
    assert llm_kwargs(orpo, tensor_parallel_size=1)["dtype"] == "float32"
    assert llm_kwargs(trained["base"], tensor_parallel_size=1)["dtype"] == "auto"
    from prefbias.generation.base import GenerationError

    with pytest.raises(GenerationError, match="float32"):
        llm_kwargs(orpo, tensor_parallel_size=1, dtype="bfloat16")


@pytest.mark.slow
@pytest.mark.helm
def test_helm_client_loads_the_recorded_dtype(trained, reference, tmp_path):
    """The HELM client (HELM's own environment) serves the same fp32 base + adapter."""
    py = ROOT / ".venv-helm" / "bin" / "python"
    if not py.exists():
        pytest.fail(f"HELM environment absent ({py}); create it with scripts/setup-helm-env.sh")
    out = tmp_path / "logits.pt"
    code = ("import sys, torch\n"
            "from prefbias.evaluation.helm_client import _Server\n"
            "m = _Server(sys.argv[1], apply_chat_template=False).model\n"
            "assert {p.dtype for p in m.parameters()} == {torch.float32}\n"
            "with torch.no_grad():\n"
            "    torch.save(m(input_ids=torch.load(sys.argv[2])).logits, sys.argv[3])\n")
    torch.save(_ids(), tmp_path / "ids.pt")
    subprocess.run([str(py), "-c", code, str(trained["orpo"]), str(tmp_path / "ids.pt"), str(out)],
                   check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    torch.testing.assert_close(torch.load(out).double(), reference["exact"], rtol=1e-5,
                               atol=1e-5)
