"""Running the pipeline on a Slurm cluster: per-rule resources, site settings, preflight checks.

* :mod:`prefbias.hpc.resources` — ``config['resources']`` + ``config['cluster']`` -> the Slurm
  resources of one rule (retries escalate runtime and memory).
* :mod:`prefbias.hpc.site` — the ``cluster:`` section (account, partitions, GPU type, scratch, HF
  cache; ``${VAR:-default}`` values) and the environment it gives jobs and containers.
* :mod:`prefbias.hpc.preflight` — checks against the live cluster (``sinfo``/``sacctmgr``) and the
  image files, before anything is submitted.
"""
