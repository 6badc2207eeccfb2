"""sad: Structured Agent Distillation toolkit.

The package is a library first: every stage is a plain function over iterables of
dicts (or tensors); the Typer commands in ``sadcli.commands`` only parse options,
open files and render. Heavy libraries (torch, transformers) are imported lazily.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
