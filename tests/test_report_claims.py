"""The paper's claims as data: every claims.csv parses and names rows and metrics that exist; verdicts come
from the seeds x items multi-bootstrap (holds / not distinguishable / reversed)."""

from __future__ import annotations

import json
import random

import pytest
from test_report_support import summary_references

from prefixlab.report.claims import Claim, decide, load_claims, to_markdown, verdicts
from prefixlab.report.collect import collect_runs
from prefixlab.resources import EXPERIMENTS_DIR
from prefixlab.suites import SUITES


def references(n: int = 40) -> list[str]:
    return summary_references(n, 12)


def write_run(root, label, seed, outputs, refs):
    run = root / f"label={label},seed={seed}"
    run.mkdir(parents=True)
    (run / "generations.jsonl").write_text(
        "".join(
            json.dumps({"source": f"doc {i}", "output": o, "references": [r]}) + "\n"
            for i, (o, r) in enumerate(zip(outputs, refs, strict=True))
        )  # fmt: skip
    )
    record = {"status": "complete", "study": "claims", "label": label, "metric_suite": "rouge",
              "primary_metric": "ROUGE_2", "config": {"seed": seed, "label": label, "task": {"name": "xsum"}},
              "metrics": {"test": {"ROUGE_2": 0.0}}}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(record))


@pytest.mark.parametrize("experiment", sorted(p.parent.name for p in EXPERIMENTS_DIR.glob("*/claims.csv")))
def test_every_claims_file_parses_with_known_metrics(experiment):
    claims = load_claims(experiment)
    assert claims
    metrics = {m for s in SUITES.values() for m in s.metrics}
    assert all(c.metric in metrics and c.a != c.b and c.source for c in claims)


def test_a_row_with_an_unquoted_comma_is_an_error_naming_the_line(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "claims.csv").write_text(
        "claim,a,b,relation,metric,source\nok,A,B,>,BLEU,Table 2\nbad,A,B,=,BLEU,Table 2 (70.3, ACL 2021)\n"
    )
    with pytest.raises(ValueError, match=r"claims.csv:3: more fields .*quote a field"):
        load_claims("x", root=tmp_path)


def test_verdicts_hold_reverse_or_cannot_tell(tmp_path):
    refs = references()
    rng = random.Random(1)
    for seed in (0, 1, 2):
        write_run(tmp_path, "copy", seed, refs, refs)  # copies the reference
        noisy = [" ".join(w if rng.random() < 0.5 else "x" for w in r.split()) for r in refs]
        write_run(tmp_path, "noisy", seed, noisy, refs)
        write_run(tmp_path, "constant", seed, ["the council"] * len(refs), refs)
    frame = collect_runs(tmp_path).frame
    claims = [
        Claim("copy beats constant", "copy", "constant", ">", "ROUGE_2", "test"),
        Claim("constant beats copy", "constant", "copy", ">", "ROUGE_2", "test"),
        Claim("copy equals copy", "copy", "copy", "=", "ROUGE_2", "test"),
        Claim("copy equals constant", "copy", "constant", "=", "ROUGE_1", "test"),
        Claim("copy beats a row nobody ran", "copy", "missing", ">", "ROUGE_2", "test"),
        Claim("copy matches or beats constant", "copy", "constant", ">=", "ROUGE_2", "test"),
        Claim("copy matches or beats copy", "copy", "copy", ">=", "ROUGE_2", "test"),
        Claim("constant matches or beats copy", "constant", "copy", ">=", "ROUGE_2", "test"),
    ]
    results = verdicts(frame, claims, n_samples=300)
    assert [r.verdict for r in results] == [
        "holds", "reversed", "holds (not distinguishable)", "does not hold", "not run",
        "holds (higher)", "holds (not distinguishable)", "does not hold",
    ]  # fmt: skip
    assert results[0].p_value < 0.01 and results[0].low > 0 and results[0].seeds == (3, 3)
    assert results[2].difference == 0 and results[2].p_value == 1
    text = to_markdown("claims", results, {})
    assert "**holds**" in text and "**reversed**" in text and "| copy beats a row nobody ran |" in text


def test_decide_on_the_interval():
    assert decide(">", 0.1, 0.3) == "holds"
    assert decide(">", -0.1, 0.3) == "not distinguishable"
    assert decide(">", -0.3, -0.1) == "reversed"
    assert decide("=", -0.1, 0.3) == "holds (not distinguishable)"
    assert decide("=", 0.1, 0.3) == "does not hold"
    assert decide(">=", 0.1, 0.3) == "holds (higher)"
    assert decide(">=", -0.1, 0.3) == "holds (not distinguishable)"
    assert decide(">=", -0.3, -0.1) == "does not hold"


def test_claims_use_only_the_learning_rate_chosen_on_validation(tmp_path, monkeypatch):
    import prefixlab.report.claims as claims_module

    refs = references()
    write_run(tmp_path / "runs", "fine-tune", 0, refs, refs)  # lr 1e-4, best on validation: copies
    write_run(tmp_path / "runs", "fine-tune", 1, ["the council"] * len(refs), refs)  # lr 1e-2: constant
    write_run(tmp_path / "runs", "prefix", 0, ["the council"] * len(refs), refs)
    for name, lr, val in (
        ("fine-tune,seed=0", 1e-4, 1.0),
        ("fine-tune,seed=1", 1e-2, 3.0),
        ("prefix,seed=0", 1e-3, 2.0),
    ):
        path = tmp_path / "runs" / f"label={name}" / "metrics.json"
        record = json.loads(path.read_text())
        record["config"] |= {"seed": 0, "trainer": {"lr": lr}}
        record["metrics"]["validation"] = {"val_loss": val}
        record["training"] = {"best_metric": "val_loss"}
        path.write_text(json.dumps(record))
    frame = collect_runs(tmp_path / "runs").frame
    claim = Claim("fine-tuning beats prefix", "fine-tune", "prefix", ">", "ROUGE_2", "test")
    monkeypatch.setattr(claims_module, "load_claims", lambda experiment: [claim])
    path = claims_module.write_claims(tmp_path, "toy", "xsum_main", frame, {"ROUGE_2": 1.0})
    row = next(
        line for line in path.read_text().splitlines() if line.startswith("| fine-tuning beats prefix")
    )
    assert "| 1, 1 |" in row and "**holds**" in row  # the lr 1e-2 run (a constant output) is left out


def test_rows_named_by_settings_where_runs_share_a_label(tmp_path):
    refs = references()
    for seed in (0, 1):
        for reparam, outputs in (("mlp", refs), ("none", ["the council"] * len(refs))):
            write_run(tmp_path / reparam, "PREFIX-6", seed, outputs, refs)
            path = tmp_path / reparam / f"label=PREFIX-6,seed={seed}" / "metrics.json"
            record = json.loads(path.read_text())
            record["config"] |= {"method": {"reparam": reparam}, "trainer": {"lr": 1e-3}}
            path.write_text(json.dumps(record))
    frame = collect_runs(tmp_path).frame
    claims = [
        Claim("MLP beats none", "method.reparam=mlp", "method.reparam=none&trainer.lr=1e-3", ">", "ROUGE_2", "t"),
        Claim("at a rate nobody ran", "method.reparam=mlp", "method.reparam=none&trainer.lr=1e-2", ">", "ROUGE_2", "t"),
        Claim("by a column nobody has", "method.reparam=mlp", "method.depth=embedding", ">", "ROUGE_2", "t"),
    ]  # fmt: skip
    results = verdicts(frame, claims, n_samples=300)
    assert [r.verdict for r in results] == ["holds", "not run", "not run"]
    assert results[0].seeds == (2, 2)
