#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) after creating envs/helm.yaml: crfm-helm without its metadata's
# zstandard~=0.18 / torchvision pins (see helm-requirements.txt).
set -euo pipefail
pip install --no-deps crfm-helm==0.5.16
