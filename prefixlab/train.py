"""The Hydra app: train a method on a task, decode the test set, score it, log it, write the run folder.

    python -m prefixlab.train                                   # tiny-gpt2 on E2E: a smoke run
    python -m prefixlab.train model=smollm2-135m method.length=5 trainer.max_steps=200
    python -m prefixlab.train -m method.length=1,5,10 seed=0,1  # a sweep; re-launching skips finished jobs
    python -m prefixlab.train -m experiment=e2e_length_cpu      # a paper experiment preset (conf/experiment/)

Every job writes `<paths.runs>/<study>/<overrides>/` (see `prefixlab.runs`); `metrics.json`, written last, is
the completion marker, so a finished job is skipped and a killed one resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import platform
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from prefixlab.atomic import write_json_atomic, write_jsonl_atomic
from prefixlab.evaluate import METRICS, PRIMARY_METRIC, check_decoding, decode, generation_kwargs, score
from prefixlab.methods.config import PrefixConfig, PrefixConfigError
from prefixlab.methods.finetune import TRAINABLE, FineTuneModel
from prefixlab.methods.prefix_model import PrefixModel
from prefixlab.provenance import REPO_ROOT, git_commit
from prefixlab.runs import STATUS_COMPLETE, RunFolder, seed_everything
from prefixlab.training import Trainer, TrainerSettings, pick_device

log = logging.getLogger("prefixlab")


class RunConfigError(ValueError):
    """A config value that cannot run, found before any model loads; names the value and what is allowed."""


# ------------------------------------------------------------------------------------------ config checks
def method_parts(method: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, the kind's settings) of the method config."""
    method = dict(method)
    kind = method.pop("kind", None)
    if kind not in ("prefix", "finetune"):
        raise RunConfigError(f"method.kind={kind!r} is not allowed; choose prefix or finetune.")
    return kind, method


def check_config(cfg: DictConfig) -> None:
    """Validate the whole config cheaply, before data or model load (bad values fail in seconds)."""
    from prefixlab.models import available_models, get_model_config
    from prefixlab.tasks import TaskConfig

    model_name = cfg.model.name
    if model_name not in available_models():
        raise RunConfigError(f"model={model_name!r} is unknown; available: {', '.join(available_models())}.")
    family = get_model_config(model_name)["family"]
    kind, settings = method_parts(cfg.method)
    try:
        if kind == "prefix":
            prefix = PrefixConfig.from_dict(settings)
            if prefix.placement == "infix" and family == "encoder_decoder":
                raise RunConfigError(
                    f"method.placement=infix is undefined for the encoder-decoder model {model_name!r}; "
                    "use method.placement=prefix, or a decoder-only model."
                )
        elif settings.get("trainable") not in TRAINABLE:
            raise RunConfigError(
                f"method.trainable={settings.get('trainable')!r}; choose one of {TRAINABLE}."
            )
    except PrefixConfigError as error:
        raise RunConfigError(f"method: {error}") from error
    task = TaskConfig.from_mapping(cfg.task)
    if task.metric not in METRICS:
        raise RunConfigError(f"task.metric={task.metric!r}; choose one of {sorted(METRICS)}.")
    check_decoding(task.decoding)
    TrainerSettings(**cfg.trainer)


# ------------------------------------------------------------------------------------------ run records
#: The commit of the code this process imported. A sweep's worker processes run many jobs and keep the code they
#: started with, so a run records this rather than HEAD when it finishes.
LOADED_COMMIT = git_commit()


def system_info(device: torch.device) -> dict[str, Any]:
    """Device, library versions, peak memory: what makes a timing comparable."""
    import transformers

    import prefixlab

    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        name = torch.cuda.get_device_name(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        name = platform.processor() or platform.machine()
    return {
        "device": str(device),
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        "peak_memory_bytes": peak,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prefixlab": prefixlab.__version__,
        "git_commit": LOADED_COMMIT,
        "platform": platform.platform(),
    }


def job_identity(cfg: DictConfig) -> dict[str, Any]:
    """W&B identity of this job: group = study, name = its overrides, tags = the swept values."""
    from hydra.core.hydra_config import HydraConfig

    overrides: list[str] = []
    name = "run"
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        overrides = list(hydra_cfg.overrides.task)
        name = hydra_cfg.job.override_dirname or "run"
    return {
        "group": cfg.study,
        "name": name,
        "job_type": cfg.task.name,
        "tags": [o for o in overrides if not o.startswith(("study=", "logger", "paths."))],
    }, overrides


# ------------------------------------------------------------------------------------------ building blocks
def build_method(cfg: DictConfig, base: torch.nn.Module, tokenizer: Any):
    """PrefixModel or FineTuneModel from the method config."""
    kind, settings = method_parts(cfg.method)
    if kind == "prefix":
        return PrefixModel(base, PrefixConfig.from_dict(settings), tokenizer=tokenizer)
    return FineTuneModel(base, settings["trainable"])


def run_job(cfg: DictConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """One job end to end. Returns the metrics record (also written to `<run_dir>/metrics.json`)."""
    from prefixlab.models import load_model
    from prefixlab.tasks import (
        Collator,
        TaskConfig,
        encode_eval,
        encode_split,
        load_task,
        model_family,
        pad_id_for,
    )
    from prefixlab.tracking import make_tracker

    started = time.perf_counter()
    check_config(cfg)
    run = RunFolder(run_dir)
    if run.is_complete():
        log.info("skipping %s: it holds complete results (metrics.json)", run.path)
        import json

        return json.loads(run.metrics.read_text())
    run.path.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run.path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    settings = TrainerSettings(**cfg.trainer)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    seed_everything(cfg.seed)
    device = pick_device(settings.device)

    task = TaskConfig.from_mapping(cfg.task)
    data = load_task(task)
    base, tokenizer = load_model(OmegaConf.to_container(cfg.model, resolve=True), device=str(device))
    family = model_family(base)
    model = build_method(cfg, base, tokenizer)
    collate = Collator(pad_token_id=pad_id_for(tokenizer))
    eval_groups, eval_sources = encode_eval(data, cfg.eval.split, tokenizer, family)
    if cfg.eval.max_groups:
        eval_groups, eval_sources = eval_groups[: cfg.eval.max_groups], eval_sources[: cfg.eval.max_groups]

    identity, overrides = job_identity(cfg)
    tracker = make_tracker(cfg.logger, run.path, resolved, **identity)
    exit_code = 1
    try:
        trains = bool(any(p.requires_grad for p in model.parameters()))
        training_record: dict[str, Any] = {"trained": trains}
        if trains:
            train_set = encode_split(data, "train", tokenizer, family)
            val_set = encode_split(data, "validation", tokenizer, family) if data.validation else []
            val_groups, val_sources = (
                encode_eval(data, "validation", tokenizer, family) if data.validation else ([], [])
            )

            def generate_eval() -> dict[str, float]:
                n = settings.generate_max_groups
                outputs = decode(model, tokenizer, val_sources[:n], task.decoding,
                                 batch_size=cfg.eval.batch_size, device=device, progress=False)  # fmt: skip
                return score(task.metric, outputs, [g.references for g in val_groups[:n]])

            trainer = Trainer(
                model, settings, train_set, val_set, collate, run, seed=cfg.seed,
                log=tracker.log, generate_eval=generate_eval if settings.generate_every else None,
                log_every=cfg.logger.get("log_every", 10), progress=progress,
            )  # fmt: skip
            if trainer.maybe_resume():
                log.info("resuming %s from step %d", run.path, trainer.state.step)
            state = trainer.fit()
            training_record |= {
                "steps": state.step,
                "total_steps": trainer.total_steps,
                "epochs_completed": state.epoch,
                "train_pairs": len(train_set),
                "tokens_seen": state.tokens_seen,
                "train_seconds": state.train_seconds,
                "tokens_per_second": state.tokens_seen / max(state.train_seconds, 1e-9),
                "best_metric": settings.best_metric,
                "best_value": state.best_value,
                "best_step": state.best_step,
                "stopped_early": state.stopped_early,
                "resumed_from_step": state.resumed_from_step,
                "history": state.history,
                "loss_reduction": settings.loss_reduction,
            }
        if isinstance(model, PrefixModel):
            training_record["init_residual"] = model.init_residual
            model.export()
        parameters = model.parameter_report() if hasattr(model, "parameter_report") else {}
        if trains:
            model.save(run.prefix)

        decode_started = time.perf_counter()
        outputs = decode(model, tokenizer, eval_sources, task.decoding, batch_size=cfg.eval.batch_size,
                         device=device, progress=progress)  # fmt: skip
        decode_seconds = time.perf_counter() - decode_started
        references = [g.references for g in eval_groups]
        test_metrics = score(task.metric, outputs, references)
        write_jsonl_atomic(
            run.generations,
            (
                {"source": g.source, "output": o, "references": g.references}
                for g, o in zip(eval_groups, outputs, strict=True)
            ),
        )
        record = {
            "status": STATUS_COMPLETE,
            "study": cfg.study,
            "run_dir": str(run.path),
            "overrides": overrides,
            "config": resolved,
            "metric_suite": task.metric,
            "primary_metric": PRIMARY_METRIC[task.metric],
            "metrics": {"test": test_metrics},
            "parameters": parameters,
            "training": training_record,
            "evaluation": {
                "split": cfg.eval.split,
                "sources_decoded": len(outputs),
                "references": sum(len(r) for r in references),
                "decode_seconds": decode_seconds,
                "sources_per_second": len(outputs) / max(decode_seconds, 1e-9),
                "decoding": generation_kwargs(task.decoding, tokenizer, family == "encoder_decoder"),
            },
            "data": data.metadata(),
            "system": system_info(device),
            "wall_seconds": time.perf_counter() - started,
        }
        if training_record.get("history"):
            record["metrics"]["validation"] = {
                k: v for k, v in training_record["history"][-1].items() if k != "step"
            }
        tracker.summary(
            {f"test/{k}": v for k, v in test_metrics.items()}
            | {f"parameters/{k}": v for k, v in parameters.items()}
        )
        samples = list(zip(eval_groups, outputs, strict=True))[: cfg.eval.samples_to_log]
        tracker.table(
            "generations",
            ["source", "output", "reference"],
            [[g.source, o, g.references[0]] for g, o in samples],
        )
        if trains and cfg.logger.get("log_artifact", False):
            tracker.artifact(
                run.prefix,
                name=f"prefix-{identity['name'] or 'run'}"[:120].replace("=", "-").replace(",", "_"),
                kind="prefix",
            )
        write_json_atomic(run.metrics, record)
        exit_code = 0
    finally:
        tracker.finish(exit_code)
    primary = record["primary_metric"]
    print(
        f"prefixlab: {identity['name']}: test {primary} {test_metrics[primary]:.4f} "
        f"({len(outputs)} sources) | {parameters.get('stored_parameters', 0):,} stored params | "
        f"{record['wall_seconds']:.0f}s -> {run.path}",
        flush=True,
    )
    return record


@hydra.main(version_base="1.3", config_path=str(REPO_ROOT / "conf"), config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the test set's primary metric (for sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    record = run_job(cfg, Path(HydraConfig.get().runtime.output_dir))
    return float(record["metrics"]["test"][record["primary_metric"]])


if __name__ == "__main__":
    sys.exit(main())
