"""What lets Slurm's time-limit SIGTERM reach the trainer (docs/HPC.md, "Pre-emption and the wall
time"; measured for real in tests/test_slurm.py). The profile asks for the signal on the job
steps, without `B:` (with it only the batch shell gets the signal, dies of it at once and ends the
job; the trainer then gets the teardown TERM with `KillWait` seconds to live). Every rule that
gets the signal `exec`s its command, so the trainer is itself a process of the step: a
`bash -c '...; prefbias ... 2> log'` without `exec` keeps bash as the trainer's parent (a
redirection stops bash from replacing itself); bash dies of the TERM at once and Snakemake ends
the step while the trainer is still writing its checkpoint."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _signalled_rules() -> dict[str, str]:
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    out = {}
    for rule, res in (profile.get("set-resources") or {}).items():
        extra = str(res.get("slurm_extra", ""))
        if "--signal" in extra:
            out[rule] = extra
    return out


def _shell_of(rule: str) -> str:
    text = "\n".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    m = re.search(rf"^rule {rule}:\n(.*?)(?=^\S)", text + "\nEND", re.S | re.M)
    assert m, f"rule {rule} not found in rules/*.smk"
    shell = re.search(r"^    shell:\n\s+(\"[^\n]*)", m.group(1), re.M)
    assert shell, f"rule {rule} has no shell: block"
    return shell.group(1).strip().strip('"')


def test_training_rules_get_the_signal_on_their_job_steps():
    rules = _signalled_rules()
    assert {"train_sft", "train_dpo", "train_orpo"} <= set(rules), rules
    for rule, extra in rules.items():
        m = re.fullmatch(r"'--signal=([A-Z0-9:]+)@(\d+)'", extra)
        assert m, (rule, extra)
        assert not m.group(1).startswith("B:"), f"{rule}: B: signals only the batch shell"
        assert m.group(1) in ("TERM", "USR1"), (rule, extra)  # what the trainer handles


def test_every_signalled_rule_execs_its_command():
    for rule in _signalled_rules():
        assert _shell_of(rule).startswith("exec "), f"rule {rule} must `exec` its command"


def test_bash_keeps_itself_between_unless_the_command_is_execd(tmp_path):
    """The premise of the rule above, checked on this machine's bash: with the log redirection
    the rules use, bash stays the parent of the command unless it is exec'd."""

    def parent_is_bash(script: str) -> bool:
        proc = subprocess.Popen(["bash", "-c", script])
        try:
            time.sleep(0.5)
            comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
        finally:
            proc.kill()
            proc.wait()
        return comm == "bash"

    log = tmp_path / "log"
    assert parent_is_bash(f"set -euo pipefail; sleep 5 2> {log}")
    assert not parent_is_bash(f"set -euo pipefail; exec sleep 5 2> {log}")
