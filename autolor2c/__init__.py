"""autolor2c: search LoR2C adapters (rank, bypass spans, merge/inject) under a parameter budget."""

__version__ = "0.1.0"
