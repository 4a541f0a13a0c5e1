"""The training loop: exact resumption, best-checkpoint selection and early stopping, settings validation."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest
import torch
from tiny_models import gpt2

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.runs import RunFolder, trainable_state
from prefixlab.settings import SettingsError, validate
from prefixlab.tasks import Collator, EncodedExample
from prefixlab.training import Trainer, TrainerSettings, validation_of_tested_weights


def examples(n: int, seed: int) -> list[EncodedExample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        source = torch.randint(5, 60, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g).tolist()
        target = torch.randint(5, 60, (int(torch.randint(2, 5, (1,), generator=g)),), generator=g).tolist()
        out.append(EncodedExample(source, target, i))
    return out


TRAIN, VALIDATION = examples(24, 0), examples(6, 1)


def make_trainer(tmp_path, **settings) -> Trainer:
    torch.manual_seed(0)
    model = PrefixModel(gpt2(), PrefixConfig(length=3, mlp_hidden=16, dropout=0.2))
    options = {"lr": 1e-2, "max_steps": 6, "batch_size": 4, "checkpoint_every": 3, **settings}
    return Trainer(model, TrainerSettings(**options), TRAIN, VALIDATION, Collator(pad_token_id=0), RunFolder(tmp_path),
                   seed=0, log_every=1, progress=False)  # fmt: skip


class Interrupt(Exception):
    pass


def test_resuming_from_a_checkpoint_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / "straight")
    straight.fit()
    expected = trainable_state(straight.model)

    interrupted = make_trainer(tmp_path / "interrupted")

    def stop_at_step_4(metrics, step):
        if step == 4:
            raise Interrupt

    interrupted.log = stop_at_step_4
    with pytest.raises(Interrupt):
        interrupted.fit()
    resumed = make_trainer(tmp_path / "interrupted")
    assert resumed.maybe_resume()
    assert resumed.state.step == 3  # the checkpoint of step 3; step 4 was lost with the process
    resumed.fit()
    assert resumed.state.step == 6 and resumed.state.resumed_from_step == 3
    for name, value in trainable_state(resumed.model).items():
        assert torch.equal(value, expected[name]), name


def test_best_checkpoint_and_early_stopping_follow_the_chosen_metric(tmp_path):
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.4, 0.5])
    trainer = make_trainer(
        tmp_path, max_steps=20, eval_every=1, generate_every=1, best_metric="val_BLEU", early_stopping_patience=2,
    )  # fmt: skip
    snapshots = {}

    def generate_eval():
        snapshots[trainer.state.step] = trainable_state(trainer.model)
        return {"BLEU": next(scores)}

    trainer.generate_eval = generate_eval
    state = trainer.fit()
    assert state.stopped_early and state.step == 4  # best at step 2, then two evaluations without improvement
    assert state.best_step == 2 and state.best_value == 0.3
    assert [row["val_BLEU"] for row in state.history] == [0.1, 0.3, 0.2, 0.25]
    assert all("val_loss" in row for row in state.history)
    for name, value in trainable_state(trainer.model).items():  # the best weights are loaded at the end
        assert torch.equal(value, snapshots[2][name]), name
    # metrics.json's validation is the evaluation of those weights, not the last one (step 4: 0.25)
    assert validation_of_tested_weights(asdict(state))["val_BLEU"] == 0.3


def test_the_validation_of_tested_weights_is_the_best_steps_evaluation_else_the_last():
    history = [{"step": 10, "val_loss": 40.3}, {"step": 20, "val_loss": 38.4}, {"step": 30, "val_loss": 46.9}]
    assert validation_of_tested_weights({"history": history, "best_step": 20}) == {"val_loss": 38.4}
    assert validation_of_tested_weights({"history": history, "best_step": None}) == {"val_loss": 46.9}
    assert validation_of_tested_weights({"history": [], "best_step": None}) == {}


def test_best_metric_that_is_never_computed_is_a_clear_error(tmp_path):
    with pytest.raises(
        ValueError, match="best_metric='val_BLEU' needs validation decoding: set trainer.generate_every"
    ):
        make_trainer(tmp_path, best_metric="val_BLEU")
    trainer = make_trainer(tmp_path, best_metric="val_BLEU", generate_every=1)
    trainer.generate_eval = (
        None  # the app always passes one when generate_every is set; the loop still says why
    )
    with pytest.raises(ValueError, match="best_metric='val_BLEU' was not computed; it needs generate_every"):
        trainer.fit()


def test_only_the_prefix_has_gradients_and_the_base_stays_in_eval_mode(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2)
    base_before = {k: v.clone() for k, v in trainer.model.base.state_dict().items()}
    trainer.fit()
    assert not trainer.model.base.training
    for key, value in trainer.model.base.state_dict().items():
        assert torch.equal(value, base_before[key])


@pytest.mark.parametrize(
    "field,value",
    [("lr", 0), ("batch_size", 0), ("loss_reduction", "mean"), ("dtype", "float16"), ("device", "tpu")],
)
def test_invalid_trainer_settings_name_the_field(field, value):
    with pytest.raises(SettingsError, match=re.escape(f"trainer.{field}={value!r}")):
        validate(TrainerSettings, {field: value}, "trainer")
