"""Export a searched configuration for other tools (see ``formats``)."""

from .formats import FORMATS, export_config, export_folder, export_lora

__all__ = ["FORMATS", "export_config", "export_folder", "export_lora"]
