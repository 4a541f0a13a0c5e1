"""The method registry: a method is one module plus one `conf/method/*.yaml`.

A method config names its `kind`; the module `prefixlab.methods.<kind>` (or, for a method living outside
prefixlab, the dotted module path given as `kind`) defines `METHOD`, a `MethodSpec`:

    METHOD = MethodSpec(
        kind="lora",
        settings=LoraSettings,            # a dataclass: every key of the yaml but `kind`, typed
        build=lambda base, settings, tokenizer: LoraModel(base, settings),
        load=LoraModel.load,              # rebuild from what `model.save(path)` wrote
        label=lambda settings: f"LoRA-r{settings.rank}",  # the report's row name
    )

The settings dataclass is validated by `prefixlab.settings.validate` (types, ranges through `Annotated`
fields, unknown keys rejected, `__post_init__` for combinations), so a bad value fails before any model loads.
`build` returns a `SourceTargetModel`: loss, generate, save/load of only its own parameters,
`parameter_report()`, `export()`, activation checkpointing. `check`, optional, rejects a settings/model-family
combination that cannot run (e.g. an infix on an encoder-decoder), before the model loads. Nothing in the
app, the report or the tables switches on a method's kind: they call these functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prefixlab.settings import SettingsError, validate


@dataclass(frozen=True)
class MethodSpec:
    """What the app needs to know about one adaptation method."""

    kind: str
    settings: type
    build: Callable[[Any, Any, Any], Any]
    load: Callable[[Any, Any], Any]
    label: Callable[[Any], str]
    check: Callable[[Any, str], None] | None = None


def _module_name(kind: str) -> str:
    return kind if "." in kind else f"prefixlab.methods.{kind}"


def method_spec(kind: Any) -> MethodSpec:
    """The `MethodSpec` of a method kind; a clear error naming the module it looked for."""
    if not isinstance(kind, str) or not kind:
        raise SettingsError(f"method.kind={kind!r} is not allowed; it names a method ({known_kinds_text()}).")
    module_name = _module_name(kind)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name not in (module_name, module_name.rpartition(".")[0]):
            raise
        raise SettingsError(
            f"method.kind={kind!r} is unknown: no module {module_name}; {known_kinds_text()}, or give the "
            "dotted path of a module that defines METHOD = MethodSpec(...)."
        ) from None
    spec = getattr(module, "METHOD", None)
    if not isinstance(spec, MethodSpec):
        raise SettingsError(
            f"method.kind={kind!r}: module {module_name} defines no METHOD = MethodSpec(...)."
        )
    return spec


def known_kinds_text() -> str:
    """The built-in kinds, as the `kind` lines of `conf/method/*.yaml` name them."""
    from prefixlab.resources import CONF_DIR

    kinds = set()
    for path in (CONF_DIR / "method").glob("*.yaml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("kind:"):
                kinds.add(line.split(":", 1)[1].split("#")[0].strip())
    return f"built in: {', '.join(sorted(kinds))}"


def method_settings(method: Mapping[str, Any]) -> tuple[MethodSpec, Any]:
    """(spec, typed settings) of a `method` config mapping; errors name the full key (`method.length`)."""
    values = dict(method)
    spec = method_spec(values.pop("kind", None))
    return spec, validate(spec.settings, values, "method")


def method_label(method: Mapping[str, Any]) -> str:
    """The report's row name of a method config (PREFIX-10, EMB-5, FT-top2, LoRA-r4, ...)."""
    spec, settings = method_settings(method)
    return spec.label(settings)
