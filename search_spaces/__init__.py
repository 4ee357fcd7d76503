"""The built-in search spaces (YAML). A wheel installs this folder as ``autolor2c.builtin_spaces``."""
