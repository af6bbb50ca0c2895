"""prefbias: reproducible pipeline for two studies of how preference data shapes aligned LLMs."""

__version__ = "0.1.0"
