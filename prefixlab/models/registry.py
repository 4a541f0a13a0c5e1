"""The model registry: the YAML files of the Hydra config group ``model`` (``conf/model/*.yaml``).

Each file describes one model by name; :func:`get_model_config` reads it as a plain dict and
:func:`resolve_model_spec` turns a name, a dict or an omegaconf ``DictConfig`` into a validated spec
that :func:`prefixlab.models.load_model` hands to a loader. Nothing here imports torch or transformers,
so a Hydra app can validate a model name cheaply before loading anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prefixlab.models.errors import InvalidModelConfigError, UnknownModelError

#: The model to use where the Hugging Face hub cannot be reached.
OFFLINE_MODEL = "smollm2-135m"

LOADERS = ("hub", "gguf", "tiny")
FAMILIES = ("decoder_only", "encoder_decoder")
DTYPES = ("float32", "bfloat16", "float16")
#: Loaders that can place a model's layers on several devices as they load it (``device_map``).
DEVICE_MAP_LOADERS = ("hub", "gguf")

_COMMON_KEYS = ("name", "loader", "family")
_LOADER_KEYS: dict[str, tuple[str, ...]] = {
    "hub": ("hub_id",),
    "gguf": ("package", "distribution", "version", "gguf_file"),
    "tiny": ("model_type", "config"),
}


def conf_dir() -> Path:
    """Return prefixlab's ``conf/`` folder (shipped inside the package; see ``prefixlab.resources``)."""
    from prefixlab.resources import CONF_DIR

    return CONF_DIR


def model_conf_dir() -> Path:
    """Return the folder of the ``model`` config group, ``conf/model/``."""
    return conf_dir() / "model"


def available_models() -> list[str]:
    """Return the sorted names of the models in ``conf/model/`` (one per ``*.yaml`` file)."""
    return sorted(path.stem for path in model_conf_dir().glob("*.yaml"))


def get_model_config(name: str) -> dict[str, Any]:
    """Return the YAML config of the model ``name`` as a plain dict.

    Raises:
        UnknownModelError: ``name`` has no file in ``conf/model/``; the message lists the allowed names.
    """
    names = available_models()
    if name not in names:
        raise UnknownModelError(f"Unknown model {name!r}. Available models: {', '.join(names)}.")
    loaded = OmegaConf.to_container(OmegaConf.load(model_conf_dir() / f"{name}.yaml"), resolve=True)
    if not isinstance(loaded, dict):
        raise InvalidModelConfigError(f"conf/model/{name}.yaml does not hold a mapping.")
    return loaded


def resolve_model_spec(cfg_or_name: str | Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """Turn a model name, a dict or a ``DictConfig`` into a validated spec (a plain dict).

    A mapping with a ``loader`` key is taken as a complete spec. A mapping without one must name a
    registered model, and its keys override that model's YAML (e.g. ``{"name": "gpt2", "dtype": "bfloat16"}``).
    """
    if isinstance(cfg_or_name, str):
        spec = get_model_config(cfg_or_name)
    elif isinstance(cfg_or_name, DictConfig | Mapping):
        spec = _mapping_to_dict(cfg_or_name)
        if "loader" not in spec:
            if "name" not in spec:
                raise InvalidModelConfigError(
                    "A model config needs a 'name' (and a 'loader' if not registered)."
                )
            spec = {**get_model_config(str(spec["name"])), **spec}
    else:
        raise TypeError(f"Expected a model name, a dict or a DictConfig, got {type(cfg_or_name).__name__}.")
    validate_model_spec(spec)
    return spec


def validate_model_spec(spec: Mapping[str, Any]) -> None:
    """Check that ``spec`` has the keys its loader needs and supported values.

    Raises:
        InvalidModelConfigError: a key is missing or a value is not supported.
    """
    _require_keys(spec, _COMMON_KEYS)
    name = spec["name"]
    _require_choice(name, "loader", spec["loader"], LOADERS)
    _require_choice(name, "family", spec["family"], FAMILIES)
    if spec.get("dtype") is not None:
        _require_choice(name, "dtype", spec["dtype"], DTYPES)
    _require_keys(spec, _LOADER_KEYS[spec["loader"]])
    device_map = spec.get("device_map")
    if device_map is not None:
        if not isinstance(device_map, str | Mapping | DictConfig):
            raise InvalidModelConfigError(
                f"Model config {name!r}: device_map={device_map!r} must be null, a string such as 'auto', "
                "or a mapping from module names to devices."
            )
        if spec["loader"] not in DEVICE_MAP_LOADERS:
            raise InvalidModelConfigError(
                f"Model config {name!r}: device_map is supported by the {' and '.join(DEVICE_MAP_LOADERS)} "
                f"loaders, which read saved weights; the {spec['loader']!r} loader builds the model in memory."
            )


def _mapping_to_dict(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """Return a plain, resolved dict copy of a mapping or ``DictConfig``."""
    if isinstance(cfg, DictConfig):
        return dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    return {str(key): value for key, value in cfg.items()}


def _require_keys(spec: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Raise if one of ``keys`` is missing from ``spec``."""
    missing = [key for key in keys if key not in spec]
    if missing:
        label = spec.get("name", "<unnamed>")
        raise InvalidModelConfigError(f"Model config {label!r} lacks the key(s): {', '.join(missing)}.")


def _require_choice(name: str, key: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise if ``value`` (the ``key`` of model ``name``) is not one of ``allowed``."""
    if value not in allowed:
        raise InvalidModelConfigError(
            f"Model config {name!r}: {key}={value!r} is not supported; use one of {', '.join(allowed)}."
        )
