"""The Hydra app: train a method on a task, decode the test set, score it, log it, write the run folder.

    python -m prefixlab.train                                   # tiny-gpt2 on E2E: a smoke run
    python -m prefixlab.train model=smollm2-135m method.length=5 trainer.max_steps=200
    python -m prefixlab.train -m method.length=1,5,10 seed=0,1  # a sweep; re-launching skips finished jobs
    python -m prefixlab.train -m experiment=e2e_length budget=cpu  # a paper experiment at CPU scale

A job runs in phases, each a function here: `prepare` (validate the config, check the run folder's identity:
nothing loads before this passes), `build` (data, model, method), `train`, `export`, `decode_test`, `score`
and `write_record`. Every job writes `<paths.runs>/<study>/<overrides>/` (see `prefixlab.runs`); `identity.json`
(first) records what the run computes (`prefixlab.identity`) and `metrics.json`, written last, is the
completion marker: a finished job with the same identity is skipped, a killed one resumes from its checkpoint,
and one whose config changed stops with the differences.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from prefixlab.atomic import write_json_atomic, write_jsonl_atomic
from prefixlab.evaluate import decode, generation_kwargs, score
from prefixlab.identity import (
    IDENTITY_FILE,
    check_folder,
    claim,
    fingerprint,
    identity,
    move_aside,
    write_identity,
)
from prefixlab.memory import JobMemory
from prefixlab.provenance import git_commit
from prefixlab.resources import CONF_DIR
from prefixlab.run_config import RunConfig, RunConfigError, parse_run_config
from prefixlab.runs import STATUS_COMPLETE, RunFolder, seed_everything
from prefixlab.suites import suite
from prefixlab.training import Trainer, pick_device, validation_of_tested_weights

__all__ = ["RunConfigError", "check_config", "main", "run_job"]

log = logging.getLogger("prefixlab")

#: The commit of the code this process imported. A sweep's worker processes run many jobs and keep the code they
#: started with, so a run records this rather than HEAD when it finishes.
LOADED_COMMIT = git_commit()


def check_config(cfg: DictConfig) -> RunConfig:
    """Validate the whole config cheaply, before data or model load (bad values fail in seconds)."""
    return parse_run_config(cfg)


# ------------------------------------------------------------------------------------------ records
def system_info(device: torch.device, memory: JobMemory) -> dict[str, Any]:
    """Device, library versions, this job's peak memory: what makes a timing comparable."""
    import transformers

    import prefixlab

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    return {
        "device": str(device),
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        **memory.report(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prefixlab": prefixlab.__version__,
        "git_commit": LOADED_COMMIT,
        "platform": platform.platform(),
    }


def job_identity(study: str) -> tuple[dict[str, Any], list[str]]:
    """W&B identity of this job: group = study, name = its overrides, tags = the swept values."""
    from hydra.core.hydra_config import HydraConfig

    overrides: list[str] = []
    name = "run"
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        overrides = list(hydra_cfg.overrides.task)
        name = hydra_cfg.job.override_dirname or "run"
    return {
        "group": study,
        "name": name,
        "tags": [o for o in overrides if not o.startswith(("study=", "logger", "paths.", "recompute"))],
        "overrides": overrides,
    }, overrides


# ------------------------------------------------------------------------------------------ phases
@dataclass
class Prepared:
    """The outcome of `prepare`: what to do with the run folder, and the job's typed config and identity."""

    config: RunConfig
    run: RunFolder
    action: str  # fresh | resume | skip | duplicate
    identity: dict[str, Any]
    duplicate_of: Path | None = None


def _legacy_identity(run: RunFolder) -> dict[str, Any] | None:
    """The identity of a folder written before identity.json existed, from its resolved config.yaml."""
    path = run.path / "config.yaml"
    if not path.is_file():
        return None
    try:
        return identity(parse_run_config(OmegaConf.load(path)))
    except (RunConfigError, ValueError, TypeError):
        return None


def prepare(cfg: DictConfig, run_dir: Path) -> Prepared:
    """Validate the config and decide what the run folder allows; nothing loads and nothing is written here
    except the identity of a new run (raises `RunConfigError` or `StaleRunError`)."""
    config = parse_run_config(cfg)
    run = RunFolder(run_dir)
    if config.recompute and run.path.exists():
        moved = move_aside(run.path)
        log.warning("recompute=true: moved the old %s to %s", run.path, moved)
    ident = identity(config)
    legacy = None if (run.path / IDENTITY_FILE).is_file() else _legacy_identity(run)
    action = check_folder(run.path, ident, run.is_complete(), legacy)
    if action == "fresh":
        other = claim(run.path, fingerprint(ident))
        if other is not None:
            return Prepared(config, run, "duplicate", ident, duplicate_of=other)
        run.path.mkdir(parents=True, exist_ok=True)
        write_identity(run.path, ident, LOADED_COMMIT)
        (run.path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config.resolved)))
    return Prepared(config, run, action, ident)


@dataclass
class Job:
    """What the phases after `prepare` share: the loaded data, model, method and evaluation sources."""

    config: RunConfig
    run: RunFolder
    device: torch.device
    data: Any
    tokenizer: Any
    family: str
    model: Any
    collate: Any
    eval_groups: list[Any]
    eval_sources: list[Any]
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def trains(self) -> bool:
        """Whether the method has anything to train (the zero-shot model has not)."""
        return any(p.requires_grad for p in self.model.parameters())


def build(config: RunConfig, run: RunFolder, device: torch.device) -> Job:
    """Load the data and the base model, wrap it in the method, encode the evaluation sources."""
    from prefixlab.models import load_model
    from prefixlab.tasks import Collator, encode_eval, load_task, model_family, pad_id_for

    data = load_task(config.task)
    base, tokenizer = load_model(config.model, device=str(device))
    family = model_family(base)
    model = config.method_spec.build(base, config.method, tokenizer)
    eval_groups, eval_sources = encode_eval(data, config.eval.split, tokenizer, family)
    if config.eval.max_groups:
        eval_groups, eval_sources = (
            eval_groups[: config.eval.max_groups],
            eval_sources[: config.eval.max_groups],
        )
    collate = Collator(pad_token_id=pad_id_for(tokenizer))
    return Job(config, run, device, data, tokenizer, family, model, collate, eval_groups, eval_sources)


def train(job: Job, tracker: Any, *, progress: bool = True) -> dict[str, Any]:
    """Train the method's parameters (resuming the run's checkpoint if any); returns the training record."""
    from prefixlab.tasks import encode_eval, encode_split

    if not job.trains:
        return {"trained": False}
    config, data, tokenizer, family = job.config, job.data, job.tokenizer, job.family
    settings = config.trainer
    train_set = encode_split(data, "train", tokenizer, family)
    val_set = encode_split(data, "validation", tokenizer, family) if data.validation else []
    val_groups, val_sources = (
        encode_eval(data, "validation", tokenizer, family) if data.validation else ([], [])
    )

    def generate_eval() -> dict[str, float]:
        n = settings.generate_max_groups
        outputs = decode(job.model, tokenizer, val_sources[:n], config.task.decoding,
                         batch_size=config.eval.batch_size, device=job.device, progress=False)  # fmt: skip
        return score(config.task.metric, outputs, [g.references for g in val_groups[:n]])

    trainer = Trainer(
        job.model, settings, train_set, val_set, job.collate, job.run, seed=config.seed, log=tracker.log,
        generate_eval=generate_eval if settings.generate_every else None, log_every=config.logger.log_every,
        progress=progress,
    )  # fmt: skip
    if trainer.maybe_resume():
        log.info("resuming %s from step %d", job.run.path, trainer.state.step)
    state = trainer.fit()
    return {
        "trained": True,
        "steps": state.step,
        "total_steps": trainer.total_steps,
        "epochs_completed": state.epoch,
        "train_pairs": len(train_set),
        "tokens_seen": state.tokens_seen,
        "train_seconds": state.train_seconds,
        "seconds_per_step": state.train_seconds / max(state.step - (state.resumed_from_step or 0), 1),
        "tokens_per_second": state.tokens_seen / max(state.train_seconds, 1e-9),
        "best_metric": settings.best_metric,
        "best_value": state.best_value,
        "best_step": state.best_step,
        "stopped_early": state.stopped_early,
        "resumed_from_step": state.resumed_from_step,
        "history": state.history,
        "loss_reduction": settings.loss_reduction,
    }


def export(job: Job) -> dict[str, Any]:
    """Fold the method into what is stored (a prefix keeps only P), save it, report its parameters."""
    extra = {}
    if hasattr(job.model, "init_residual"):
        extra["init_residual"] = job.model.init_residual
    job.model.export()
    if job.trains:
        job.model.save(job.run.prefix)
    return {"parameters": job.model.parameter_report(), "export": extra}


def decode_test(job: Job, *, progress: bool = True) -> tuple[list[str], float]:
    """Decode every evaluation source once; returns the outputs and the seconds it took."""
    started = time.perf_counter()
    outputs = decode(job.model, job.tokenizer, job.eval_sources, job.config.task.decoding,
                     batch_size=job.config.eval.batch_size, device=job.device, progress=progress)  # fmt: skip
    return outputs, time.perf_counter() - started


def score_test(job: Job, outputs: list[str]) -> dict[str, float]:
    """Score the outputs with the task's metric suite against all references of each source."""
    return score(job.config.task.metric, outputs, [g.references for g in job.eval_groups])


def write_record(job: Job, prepared: Prepared, parts: dict[str, Any]) -> dict[str, Any]:
    """Write generations.jsonl and, last, metrics.json (the completion marker); returns the record."""
    config, outputs = job.config, parts["outputs"]
    write_jsonl_atomic(
        job.run.generations,
        (
            {"source": g.source, "output": o, "references": g.references}
            for g, o in zip(job.eval_groups, outputs, strict=True)
        ),
    )
    training = parts["training"] | parts["export"]
    references = [g.references for g in job.eval_groups]
    record = {
        "status": STATUS_COMPLETE,
        "study": config.study,
        "label": config.label,
        "run_dir": str(job.run.path),
        "overrides": parts["overrides"],
        "fingerprint": fingerprint(prepared.identity),
        "config": config.resolved,
        "metric_suite": config.task.metric,
        "primary_metric": suite(config.task.metric).primary,
        "metrics": {"test": parts["test_metrics"]},
        "parameters": parts["parameters"],
        "training": training,
        "evaluation": {
            "split": config.eval.split,
            "sources_decoded": len(outputs),
            "references": sum(len(r) for r in references),
            "decode_seconds": parts["decode_seconds"],
            "sources_per_second": len(outputs) / max(parts["decode_seconds"], 1e-9),
            "decoding": generation_kwargs(
                config.task.decoding, job.tokenizer, job.family == "encoder_decoder"
            ),
        },
        "data": job.data.metadata(),
        "system": parts["system"],
        "wall_seconds": parts["wall_seconds"],
    }
    if training.get("history"):
        record["metrics"]["validation"] = validation_of_tested_weights(training)
    write_json_atomic(job.run.metrics, record)
    return record


def _track_results(tracker: Any, job: Job, record: dict[str, Any], outputs: list[str], name: str) -> None:
    tracker.summary(
        {f"test/{k}": v for k, v in record["metrics"]["test"].items()}
        | {f"parameters/{k}": v for k, v in record["parameters"].items()}
        # the tested weights' validation (best checkpoint) replaces the last evaluation W&B would keep
        | record["metrics"].get("validation", {})
    )
    samples = list(zip(job.eval_groups, outputs, strict=True))[: job.config.eval.samples_to_log]
    tracker.table(
        "generations", ["source", "output", "reference"], [[g.source, o, g.references[0]] for g, o in samples]
    )
    if job.trains and job.config.logger.log_artifact:
        artifact = f"prefix-{name or 'run'}"[:120].replace("=", "-").replace(",", "_")
        tracker.artifact(job.run.prefix, name=artifact, kind="prefix")


def run_job(cfg: DictConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any] | None:
    """One job end to end. Returns the metrics record (also `<run_dir>/metrics.json`), or the record of the
    folder that already holds this config (None while that one is still running)."""
    from prefixlab.tracking import make_tracker

    started = time.perf_counter()
    prepared = prepare(cfg, run_dir)
    config, run = prepared.config, prepared.run
    if prepared.action == "skip":
        log.info("skipping %s: it holds complete results of this config (metrics.json)", run.path)
        return json.loads(run.metrics.read_text())
    if prepared.action == "duplicate":
        other = RunFolder(prepared.duplicate_of)
        log.warning("not running %s: the same config already runs in %s", run.path, other.path)
        print(f"prefixlab: {run.path.name}: same config as {other.path} (not run twice)", flush=True)
        return json.loads(other.metrics.read_text()) if other.is_complete() else None
    if config.trainer.num_threads:
        torch.set_num_threads(config.trainer.num_threads)
    seed_everything(config.seed)
    device = pick_device(config.trainer.device)
    memory = JobMemory(device)
    job = build(config, run, device)

    wandb_identity, overrides = job_identity(config.study)
    tracker = make_tracker(
        dataclasses.asdict(config.logger),
        run.path,
        config.resolved,
        job_type=config.task.name,
        **wandb_identity,
    )
    exit_code = 1
    try:
        training = train(job, tracker, progress=progress)
        exported = export(job)
        outputs, decode_seconds = decode_test(job, progress=progress)
        test_metrics = score_test(job, outputs)
        record = write_record(
            job,
            prepared,
            {
                "outputs": outputs, "decode_seconds": decode_seconds, "test_metrics": test_metrics,
                "training": training, "export": exported["export"], "parameters": exported["parameters"],
                "overrides": overrides, "system": system_info(device, memory),
                "wall_seconds": time.perf_counter() - started,
            },
        )  # fmt: skip
        _track_results(tracker, job, record, outputs, wandb_identity["name"])
        exit_code = 0
    finally:
        tracker.finish(exit_code)
    primary = record["primary_metric"]
    print(
        f"prefixlab: {wandb_identity['name']}: test {primary} {test_metrics[primary]:.4f} "
        f"({len(outputs)} sources) | {record['parameters'].get('stored_parameters', 0):,} stored params | "
        f"{record['wall_seconds']:.0f}s -> {run.path}",
        flush=True,
    )
    return record


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the test set's primary metric (for sweepers; NaN for a duplicate still running)."""
    from hydra.core.hydra_config import HydraConfig

    record = run_job(cfg, Path(HydraConfig.get().runtime.output_dir))
    if record is None:
        return float("nan")
    return float(record["metrics"]["test"][record["primary_metric"]])


if __name__ == "__main__":
    sys.exit(main())
