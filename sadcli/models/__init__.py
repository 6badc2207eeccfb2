"""Model and tokenizer specs (see :mod:`sadcli.models.spec`).

``resolve_spec(spec) -> str`` (a local folder), ``load_tokenizer(spec)``,
``load_model(spec, dtype=None, device=None)``, ``ensure_embedded(alias)``. The embedded default is
``smollm2-135m``. Names are imported lazily so that ``python -m sadcli.models`` and ``sad --help``
import nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_SPEC", "EMBEDDED", "INSTALL_CMD", "embedded_dir", "ensure_embedded", "find_gguf",
           "is_installed", "load_model", "load_tokenizer", "resolve_spec", "sad_home"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sadcli.models import spec

        return getattr(spec, name)
    raise AttributeError(name)
