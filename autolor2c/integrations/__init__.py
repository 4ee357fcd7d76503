"""Bridges to tools people already use (``hf``: a Hugging Face Trainer callback)."""
