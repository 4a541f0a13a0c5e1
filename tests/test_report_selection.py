"""Fair model selection: each row keeps the learning rate that is best on validation, never on test."""

from __future__ import annotations

import pandas as pd

from prefixlab.report.selection import select_on_validation
from prefixlab.report.tables import e2e_main_table


def runs() -> pd.DataFrame:
    rows = []
    # fine-tune: lr 1e-4 is best on validation, 1e-3 would be best on test (a trap for test-set selection)
    for lr, val, test in [(1e-4, 1.0, 0.60), (1e-3, 2.0, 0.70), (1e-5, 1.5, 0.50)]:
        for seed in (0, 1):
            rows.append({"label": "fine-tune", "seed": seed, "trainer.lr": lr, "validation.val_loss": val + seed / 100,
                         "test.BLEU": test, "task.name": "e2e", "method.kind": "finetune", "metric_suite": "e2e",
                         "training.best_metric": "val_loss", "training.seconds_per_step": 3.0,
                         "system.peak_memory_bytes": 3 * 2**30, "parameters.trainable_parameters": 100})  # fmt: skip
    for seed in (0, 1):  # one lr only: kept as it is
        rows.append({"label": "PREFIX-10", "seed": seed, "trainer.lr": 1e-3, "validation.val_loss": 1.2,
                     "test.BLEU": 0.65, "task.name": "e2e", "method.kind": "prefix", "metric_suite": "e2e",
                     "training.best_metric": "val_loss", "training.seconds_per_step": 2.0,
                     "system.peak_memory_bytes": 2**30, "parameters.trainable_parameters": 10})  # fmt: skip
    return pd.DataFrame(rows)


def test_each_row_keeps_the_learning_rate_best_on_validation():
    kept, choices = select_on_validation(runs())
    assert sorted(kept[kept["label"] == "fine-tune"]["trainer.lr"].unique()) == [1e-4]
    assert len(kept[kept["label"] == "PREFIX-10"]) == 2
    (choice,) = choices
    assert (choice.label, choice.lr, choice.metric) == ("fine-tune", 1e-4, "val_loss")
    assert "lr 0.0001 chosen on mean val_loss" in choice.describe()


def test_a_generation_metric_is_maximized():
    frame = runs().assign(**{"training.best_metric": "val_BLEU"})
    frame["validation.val_BLEU"] = -frame["validation.val_loss"]  # best = highest
    kept, (choice,) = select_on_validation(frame)
    assert choice.lr == 1e-4 and choice.metric == "val_BLEU"


def test_the_methods_table_reports_only_the_chosen_runs_with_their_costs():
    table = e2e_main_table(runs(), missing="omit")
    row = table.numeric[table.numeric["row"] == "fine-tune"].iloc[0]
    assert row["n"] == 2 and abs(row["BLEU mean"] - 60.0) < 1e-9  # the 1e-4 runs only, x100
    assert any("fine-tune: lr 0.0001 chosen" in note for note in table.notes)
    assert "s / step" in table.display.columns and "peak MiB" in table.display.columns
    prefix = table.display[table.display["row"] == "PREFIX-10"].iloc[0]
    assert prefix["peak MiB"] == "1024"


def test_cost_columns_are_the_median_of_a_rows_runs():
    # Three prefix seeds, one slowed by other load: the step time shown is the median, not the mean.
    frame = runs()
    third = frame[frame["label"] == "PREFIX-10"].iloc[[0]].assign(seed=2)
    frame = pd.concat([frame, third], ignore_index=True)
    frame.loc[frame.index[-1], "training.seconds_per_step"] = 11.0
    table = e2e_main_table(frame, missing="omit")
    prefix = table.display[table.display["row"] == "PREFIX-10"].iloc[0]
    assert prefix["s / step"] == "2.00"  # the mean would be 5.00
    assert "s / step, peak MiB: the median over each row's runs" in table.notes


def test_rates_are_compared_on_the_seeds_they_all_ran():
    # A grid on seed 0, then seeds 1 and 2 at the winner only: seed 1's much worse validation must not make
    # the winner lose to a rate that never ran seed 1.
    rows = [{"label": "LoRA-r4", "seed": 0, "trainer.lr": lr, "validation.val_loss": val, "test.BLEU": 0.5,
             "training.best_metric": "val_loss"} for lr, val in [(1e-4, 1.4), (1e-3, 1.0), (1e-2, 1.3)]]  # fmt: skip
    rows += [{"label": "LoRA-r4", "seed": s, "trainer.lr": 1e-3, "validation.val_loss": 2.0, "test.BLEU": 0.6,
              "training.best_metric": "val_loss"} for s in (1, 2)]  # fmt: skip
    kept, (choice,) = select_on_validation(pd.DataFrame(rows))
    assert choice.lr == 1e-3 and choice.seeds == (0,) and choice.value == 1.0
    assert sorted(kept["seed"]) == [0, 1, 2] and set(kept["trainer.lr"]) == {1e-3}
    assert "over seed 0 (" in choice.describe()


def test_without_a_shared_seed_each_rate_is_averaged_over_its_own_seeds():
    rows = [{"label": "fine-tune", "seed": s, "trainer.lr": lr, "validation.val_loss": val,
             "training.best_metric": "val_loss"} for lr, s, val in [(1e-4, 0, 1.0), (1e-4, 1, 3.0), (1e-5, 2, 1.5)]]  # fmt: skip
    _, (choice,) = select_on_validation(pd.DataFrame(rows))
    assert choice.lr == 1e-5 and choice.seeds == ()


def test_rows_that_share_a_label_are_selected_apart():
    # reparam_init: every run is PREFIX-6; only the direct prefix (reparam none) ran a second learning rate
    rows = []
    for reparam, lrs in (("mlp", [(1e-3, 1.0)]), ("none", [(1e-3, 3.0), (1e-2, 2.0)])):
        for lr, val in lrs:
            for seed in (0, 1):
                rows.append({"label": "PREFIX-6", "seed": seed, "trainer.lr": lr, "method.reparam": reparam,
                             "validation.val_loss": val, "test.BLEU": 0.5, "task.name": "e2e",
                             "training.best_metric": "val_loss"})  # fmt: skip
    kept, (choice,) = select_on_validation(pd.DataFrame(rows))
    assert sorted(map(tuple, kept[["method.reparam", "trainer.lr"]].drop_duplicates().values)) == [
        ("mlp", 1e-3), ("none", 1e-2),
    ]  # fmt: skip
    assert len(kept) == 4 and choice.label == "PREFIX-6 (method.reparam=none)" and choice.lr == 1e-2


def test_a_grid_on_one_training_subset_is_compared_on_that_subset_only():
    # lowdata_cpu: every run is seed 0; the grid ran on subset 0, the winner also on subsets 1 and 2, whose
    # validation losses are far worse (other dev sets). A rate must not win because the winner's mean spans
    # subsets the others never ran.
    base = {
        "label": "FT",
        "seed": 0,
        "test.BLEU": 0.5,
        "training.best_metric": "val_loss",
        "task.train_size": 50,
    }
    rows = [{**base, "task.subset_seed": 0, "trainer.lr": lr, "validation.val_loss": val}
            for lr, val in [(3e-5, 1.4), (1e-4, 1.0), (3e-4, 1.3)]]  # fmt: skip
    rows += [{**base, "task.subset_seed": s, "trainer.lr": 1e-4, "validation.val_loss": 3.0} for s in (1, 2)]
    kept, (choice,) = select_on_validation(pd.DataFrame(rows))
    assert choice.lr == 1e-4 and choice.value == 1.0 and choice.seeds == ((0, 0),)
    assert choice.over == ("seed", "task.subset_seed")
    assert sorted(kept["task.subset_seed"]) == [0, 1, 2] and set(kept["trainer.lr"]) == {1e-4}
    assert "over (seed, subset_seed) (0, 0) (" in choice.describe()


def test_a_run_that_stopped_early_is_judged_by_the_weights_it_tested():
    # lowdata_cpu, fine-tuning at 50 pairs: 1e-4's best checkpoint (38.4, the weights tested) beats 3e-5's
    # (41.1), but 1e-4 then overfits for three evaluations before stopping (last 47.0). Judging by the last
    # evaluation would pick 3e-5 for a model that was never tested.
    base = {"label": "FT", "seed": 0, "test.BLEU": 0.5, "training.best_metric": "val_loss"}
    rows = [{**base, "trainer.lr": lr, "validation.val_loss": last, "training.best_value": best}
            for lr, last, best in [(3e-5, 41.1, 41.1), (1e-4, 47.0, 38.4)]]  # fmt: skip
    kept, (choice,) = select_on_validation(pd.DataFrame(rows))
    assert choice.lr == 1e-4 and choice.value == 38.4 and choice.candidates == {3e-5: 41.1, 1e-4: 38.4}
    # without a best value (runs pulled from W&B), the recorded validation metric decides
    kept, (choice,) = select_on_validation(pd.DataFrame(rows).drop(columns="training.best_value"))
    assert choice.lr == 3e-5
