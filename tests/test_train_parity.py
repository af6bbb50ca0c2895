"""Our DPO/ORPO losses vs TRL 1.16's trainers on the same batch and tiny models (<= 1e-5)."""

from __future__ import annotations

import pytest
import torch

from prefbias.io import write_jsonl
from prefbias.train import synthetic
from prefbias.train.batching import collate, encode_pairs, render_prompt
from prefbias.train.losses import dpo_loss, sequence_logps
from prefbias.train.tasks import ORPOTask

trl = pytest.importorskip("trl")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthetic_model):
    from prefbias.models.load import load_causal_lm, load_tokenizer

    d = tmp_path_factory.mktemp("parity")
    pol_dir, ref_dir = synthetic_model(seed=1), synthetic_model(seed=2)
    rows = synthetic.pref_rows(4, seed=3)
    write_jsonl(d / "prefs.jsonl", rows)
    tok = load_tokenizer(pol_dir)
    policy = load_causal_lm(pol_dir, dtype=torch.float32, device="cpu")
    ref = load_causal_lm(ref_dir, dtype=torch.float32, device="cpu")
    return d, rows, tok, policy, ref


def _dataset(rows, tok):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": render_prompt(tok, r["prompt"]), "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in rows])


def test_dpo_matches_trl(setup, tmp_path):
    from trl import DPOConfig, DPOTrainer

    d, rows, tok, policy, ref = setup
    args = DPOConfig(output_dir=str(tmp_path), bf16=False, gradient_checkpointing=False,
                     beta=0.1, max_length=256, per_device_train_batch_size=4, report_to=[],
                     use_cpu=True, dataset_num_proc=None)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args,
                         train_dataset=_dataset(rows, tok), processing_class=tok)
    feats = [trainer.train_dataset[i] for i in range(len(rows))]
    batch = trainer.data_collator(feats)
    policy.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch).item()

    ex, _ = encode_pairs(d / "prefs.jsonl", tok, max_length=256)
    b = collate(ex, tok.pad_token_id, pairs=True)
    with torch.no_grad():
        pc, pr = sequence_logps(policy(input_ids=b["input_ids"],
                                       attention_mask=b["attention_mask"]).logits,
                                b["labels"]).chunk(2)
        rc, rr = sequence_logps(ref(input_ids=b["input_ids"],
                                    attention_mask=b["attention_mask"]).logits,
                                b["labels"]).chunk(2)
    ours = dpo_loss(pc, pr, rc, rr, 0.1)[0].item()
    assert abs(ours - trl_loss) <= 1e-5, (ours, trl_loss)
    assert abs(ours - 0.6931471805599453) > 1e-3  # reference really differs from policy


def test_orpo_matches_trl(setup, tmp_path):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    d, rows, tok, policy, _ = setup
    args = ORPOConfig(output_dir=str(tmp_path), bf16=False, gradient_checkpointing=False,
                      beta=0.1, max_length=256,
                      per_device_train_batch_size=4, report_to=[], use_cpu=True)
    trainer = ORPOTrainer(model=policy, args=args, train_dataset=_dataset(rows, tok),
                          processing_class=tok)
    feats = [trainer.train_dataset[i] for i in range(len(rows))]
    batch = trainer.data_collator(feats)
    policy.eval()
    with torch.no_grad():
        trl_loss, _ = trainer.get_batch_loss_metrics(trainer.model, batch)

    ex, _ = encode_pairs(d / "prefs.jsonl", tok, max_length=256)
    task = ORPOTask(tok.pad_token_id, lam=0.1, nll_on_prompt=True)
    with torch.no_grad():
        ours, _, _ = task._compute(policy, task.collate(ex, "cpu"))
    assert abs(ours.item() - trl_loss.item()) <= 1e-5, (ours.item(), trl_loss.item())
