"""The training loop: AdamW, linear schedule with warmup, clipping, accumulation, validation, best checkpoint,
early stopping, and exact resumption from the last checkpoint of a killed job."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from prefixlab.runs import (
    RunFolder,
    load_trainable_state,
    rng_state,
    set_rng_state,
    torch_save_atomic,
    trainable_state,
)
from prefixlab.tasks import Collator, EncodedExample, LengthGroupedBatchSampler, sorted_batches


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainerSettings:
    """The `trainer` config group (see conf/trainer/default.yaml for each field); validated by
    `prefixlab.settings.validate` (types and ranges below), `__post_init__` checks combinations."""

    lr: Annotated[float, Field(gt=0)] = 8e-5
    epochs: Annotated[int, Field(ge=1)] = 5
    max_steps: Annotated[int, Field(ge=1)] | None = None
    batch_size: Annotated[int, Field(ge=1)] = 10
    grad_accum: Annotated[int, Field(ge=1)] = 1
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    loss_reduction: Literal["token_mean", "sequence_sum"] = "token_mean"
    eval_every: Annotated[int, Field(ge=1)] | None = None
    eval_max_examples: Annotated[int, Field(ge=1)] | None = 500
    generate_every: Annotated[int, Field(ge=1)] | None = None
    generate_max_groups: Annotated[int, Field(ge=1)] = 50
    best_metric: Annotated[str, Field(pattern=r"^val_")] = "val_loss"
    early_stopping_patience: Annotated[int, Field(ge=1)] | None = None
    checkpoint_every: Annotated[int, Field(ge=1)] = 50
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"
    num_threads: Annotated[int, Field(ge=1)] | None = None
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.best_metric != "val_loss" and self.generate_every is None:
            raise ValueError(
                f"trainer.best_metric={self.best_metric!r} needs validation decoding: set trainer.generate_every "
                "(validation generation metrics are computed only then), or use best_metric=val_loss."
            )

    @property
    def lower_is_better(self) -> bool:
        """Whether the best checkpoint minimizes `best_metric` (losses) or maximizes it (BLEU, ROUGE...)."""
        return self.best_metric.endswith("loss")


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batches_done_in_epoch: int = 0
    best_value: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from_step: int | None = None


def pick_device(name: str) -> torch.device:
    """ "auto" is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "trainer.device=cuda but no CUDA device is available; use trainer.device=cpu or auto."
        )
    return torch.device(name)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def validation_loss(
    model: Any,
    examples: Sequence[EncodedExample],
    collate: Collator,
    batch_size: int,
    device: torch.device,
    reduction: str,
    autocast: Callable[[], Any],
) -> float:
    """Mean validation loss, weighted by target tokens (token_mean) or sequences (sequence_sum)."""
    model.eval()
    total, weight = 0.0, 0
    for batch in sorted_batches([e.length for e in examples], batch_size):
        tensors = _to(collate([examples[i] for i in batch]), device)
        with autocast():
            loss = model(**tensors, loss_reduction=reduction).loss.item()
        w = int(tensors["target_mask"].sum()) if reduction == "token_mean" else len(batch)
        total += loss * w
        weight += w
    return total / max(weight, 1)


class Trainer:
    """Trains `model`'s trainable parameters on encoded pairs; checkpoints into `run`."""

    def __init__(
        self,
        model: Any,
        settings: TrainerSettings,
        train: Sequence[EncodedExample],
        validation: Sequence[EncodedExample],
        collate: Collator,
        run: RunFolder,
        *,
        seed: int = 0,
        log: Callable[[dict[str, float], int], None] | None = None,
        generate_eval: Callable[[], dict[str, float]] | None = None,
        log_every: int = 10,
        progress: bool = True,
    ) -> None:
        if not train:
            raise ValueError("the training split is empty: nothing to train on.")
        self.model, self.settings, self.train_set, self.collate, self.run = (
            model,
            settings,
            train,
            collate,
            run,
        )
        self.validation = (
            list(validation)[: settings.eval_max_examples] if settings.eval_max_examples else list(validation)
        )
        self.seed, self.log, self.generate_eval = seed, log or (lambda metrics, step: None), generate_eval
        self.log_every, self.progress = log_every, progress
        self.device = next(model.parameters()).device
        if settings.activation_checkpointing:
            model.set_activation_checkpointing(True)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters.")
        self.sampler = LengthGroupedBatchSampler([e.length for e in train], settings.batch_size, seed=seed)
        self.batches_per_epoch = len(self.sampler.batches(0))
        steps_per_epoch = math.ceil(self.batches_per_epoch / settings.grad_accum)
        self.total_steps = settings.max_steps or settings.epochs * steps_per_epoch
        self.optimizer = torch.optim.AdamW(self.params, lr=settings.lr, weight_decay=settings.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, settings.warmup_steps, self.total_steps
        )
        self.state = TrainState()

    # ---------------------------------------------------------------------------------- autocast
    def autocast(self):
        """bf16 autocast on CUDA when asked; a no-op context otherwise (CPU runs in the model's dtype)."""
        enabled = self.settings.dtype == "bfloat16" and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # -------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> None:
        """Write the resumable state atomically (the previous checkpoint stays valid until the rename)."""
        torch_save_atomic(
            {
                "trainable": trainable_state(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "state": asdict(self.state),
                "rng": rng_state(),
                "total_steps": self.total_steps,
            },
            self.run.checkpoint,
        )

    def maybe_resume(self) -> bool:
        """Continue from the run's checkpoint if there is one; returns whether it did."""
        if not self.run.checkpoint.exists():
            return False
        saved = torch.load(self.run.checkpoint, map_location=self.device, weights_only=False)
        load_trainable_state(self.model, saved["trainable"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = TrainState(**saved["state"])
        self.state.resumed_from_step = self.state.step
        set_rng_state(saved["rng"])
        return True

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate(self, with_generation: bool) -> dict[str, float]:
        """Validation loss (and generation metrics if asked); updates the best checkpoint."""
        metrics: dict[str, float] = {}
        if self.validation:
            metrics["val_loss"] = validation_loss(
                self.model, self.validation, self.collate, self.settings.batch_size, self.device,
                self.settings.loss_reduction, self.autocast,
            )  # fmt: skip
        if with_generation and self.generate_eval is not None:
            metrics |= {f"val_{k}": v for k, v in self.generate_eval().items()}
        self.model.train()
        value = metrics.get(self.settings.best_metric)
        if value is None and self.settings.best_metric != "val_loss":
            raise ValueError(
                f"trainer.best_metric={self.settings.best_metric!r} was not computed; it needs generate_every "
                f"(available now: {sorted(metrics)})."
            )
        state = self.state
        improved = value is not None and (
            state.best_value is None
            or (value < state.best_value if self.settings.lower_is_better else value > state.best_value)
        )
        if improved or not self.validation:
            state.best_value, state.best_step, state.evals_without_improvement = value, state.step, 0
            torch_save_atomic(trainable_state(self.model), self.run.best)
        else:
            state.evals_without_improvement += 1
        state.history.append({"step": state.step, **metrics})
        self.log(metrics, state.step)
        return metrics

    # ---------------------------------------------------------------------------------- training
    def _due(self, every: int | None, end_of_epoch: bool) -> bool:
        return (every is None and end_of_epoch) or (every is not None and self.state.step % every == 0)

    def fit(self) -> TrainState:
        """Train to `total_steps` (or early stop), then load the best weights into the model."""
        settings, state = self.settings, self.state
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            desc="training",
            unit="step",
            disable=not self.progress,
        )
        started = time.perf_counter() - state.train_seconds
        micro, window_loss, window_n = 0, 0.0, 0
        while state.step < self.total_steps and not state.stopped_early:
            batches = self.sampler.batches(state.epoch)
            for batch in batches[state.batches_done_in_epoch :]:
                tensors = _to(self.collate([self.train_set[i] for i in batch]), self.device)
                with self.autocast():
                    loss = self.model(**tensors, loss_reduction=settings.loss_reduction).loss
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"training loss is {loss.item()} at step {state.step} (epoch {state.epoch}); stopping. The "
                        f"last good checkpoint is kept in {self.run.checkpoint.parent}. Lower trainer.lr or use "
                        "trainer.dtype=float32."
                    )
                (loss / settings.grad_accum).backward()
                state.tokens_seen += int(tensors["source_mask"].sum() + tensors["target_mask"].sum())
                state.batches_done_in_epoch += 1
                window_loss, window_n, micro = window_loss + loss.item(), window_n + 1, micro + 1
                end_of_epoch = state.batches_done_in_epoch == len(batches)
                if micro % settings.grad_accum and not end_of_epoch:
                    continue
                torch.nn.utils.clip_grad_norm_(self.params, settings.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                state.step += 1
                micro = 0
                bar.update(1)
                state.train_seconds = time.perf_counter() - started
                if state.step % self.log_every == 0 or state.step == self.total_steps:
                    self.log(
                        {
                            "train_loss": window_loss / window_n,
                            "lr": self.scheduler.get_last_lr()[0],
                            "epoch": state.epoch + state.batches_done_in_epoch / len(batches),
                            "tokens_per_second": state.tokens_seen / max(state.train_seconds, 1e-9),
                        },
                        state.step,
                    )
                    bar.set_postfix(loss=f"{window_loss / window_n:.3f}")
                    window_loss, window_n = 0.0, 0
                last = state.step >= self.total_steps
                if self._due(settings.eval_every, end_of_epoch) or last:
                    self.evaluate(with_generation=self._due(settings.generate_every, False) or last)
                    patience = settings.early_stopping_patience
                    state.stopped_early = patience is not None and state.evals_without_improvement >= patience
                    self.save_checkpoint()
                elif state.step % settings.checkpoint_every == 0:
                    self.save_checkpoint()
                if last or state.stopped_early:
                    break
            if state.batches_done_in_epoch >= len(batches):
                state.epoch, state.batches_done_in_epoch = state.epoch + 1, 0
        bar.close()
        state.train_seconds = time.perf_counter() - started
        if self.run.best.exists():
            load_trainable_state(self.model, torch.load(self.run.best, map_location=self.device))
        self.model.eval()
        return state


def validation_of_tested_weights(training: dict[str, Any]) -> dict[str, Any]:
    """The validation metrics of the weights a run tests: the evaluation at its best checkpoint (`best_step`,
    which `Trainer.fit` loads before testing), else its last evaluation; `{}` without any."""
    history = training.get("history") or []
    best = [entry for entry in history if entry.get("step") == training.get("best_step")]
    entry = best[-1] if best else (history[-1] if history else {})
    return {k: v for k, v in entry.items() if k != "step"}
