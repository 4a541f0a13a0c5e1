"""`prefixlab compare`: both output modes, seeds x items, and its errors.

The E2E tests need ``e2e/testset_w_refs.csv`` under ``$PREFIXLAB_DATA_DIR`` (skipped without it, failed under
CI) and Java for METEOR/ROUGE_L/CIDEr; the rest runs on synthetic generations with the ROUGE suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_metrics_golden import load_grouped_references
from test_tasks_support import require_data

from prefixlab.cli import main
from prefixlab.metrics.bleu import corpus_bleu

N_E2E = 60  # first MRs of the E2E test set: enough for p < 0.01 with 200 resamples, quick to score


def write_run(
    folder: Path,
    sources: list[str],
    outputs: list[str],
    references: list[list[str]],
    suite: str | None = None,
    **stored,
) -> Path:
    """A run folder (generations.jsonl, and metrics.json when ``suite`` is given) or a bare file."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"source": s, "output": o, "references": r})
        for s, o, r in zip(sources, outputs, references, strict=True)
    ]
    (folder / "generations.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if suite is not None:
        record = {"status": "complete", "metric_suite": suite, "metrics": {"test": stored}}
        (folder / "metrics.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["compare", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def e2e_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders on the first MRs of the E2E test set: a system copying each MR's first reference,
    a constant output, and the copy system with its metrics.json claiming a wrong BLEU."""
    root = require_data("e2e/testset_w_refs.csv")
    import csv

    with (root / "e2e/testset_w_refs.csv").open(encoding="utf-8", newline="") as handle:
        mrs = list(dict.fromkeys(row["mr"] for row in csv.DictReader(handle)))[:N_E2E]
    references = load_grouped_references(root / "e2e/testset_w_refs.csv")[:N_E2E]
    base = tmp_path_factory.mktemp("e2e_runs")
    copy = [group[0] for group in references]
    return {
        "copy": write_run(base / "copy", mrs, copy, references, "e2e"),
        "constant": write_run(base / "constant", mrs, ["cat the"] * N_E2E, references, "e2e"),
        "stale": write_run(base / "stale", mrs, copy, references, "e2e", BLEU=0.5),
        "references": references,  # type: ignore[dict-item]
        "copy_outputs": copy,  # type: ignore[dict-item]
    }


@pytest.mark.data
def test_copying_a_reference_beats_a_constant_output_on_every_metric(e2e_runs, capsys) -> None:
    code, out, _ = run_cli(capsys, e2e_runs["copy"], e2e_runs["constant"], "--samples", "200", "--json")
    assert code == 0
    report = json.loads(out)
    assert list(report["metrics"]) == ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"]
    assert report["items"] == N_E2E and report["samples"] == 200
    for name, result in report["metrics"].items():
        assert {"a", "b", "difference", "ci95", "p_value"} <= set(result), name
        assert result["p_value"] < 0.01, name
        assert result["difference"] == pytest.approx(result["a"] - result["b"])
        low, high = result["ci95"]
        assert 0 < low <= result["difference"] <= high, name
    bleu = report["metrics"]["BLEU"]
    assert bleu["a"] == corpus_bleu(e2e_runs["copy_outputs"], e2e_runs["references"]).score  # the 0-1 scale
    assert bleu["sacrebleu_p_value"] < 0.01 and "bs:200" in bleu["signature"]
    assert report["metrics"]["CIDEr"]["resampling"] == "fixed-weights"
    assert report["metrics"]["METEOR"]["resampling"] == "exact"


@pytest.mark.data
def test_a_run_against_itself_in_text_mode(e2e_runs, capsys) -> None:
    code, out, _ = run_cli(capsys, e2e_runs["copy"], e2e_runs["copy"], "--metric", "BLEU", "--metric", "nist")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("BLEU ", "NIST"))}
    assert set(lines) == {"BLEU", "NIST*"}
    for line in lines.values():
        assert "+0.0000 [+0.0000, +0.0000]" in line and line.split()[-1] == "1"
    assert "* NIST: " in out and "held fixed" in out  # the approximation is said
    assert "sacrebleu's own PairedTest" in out


@pytest.mark.data
def test_randomization_and_a_stale_metrics_json(e2e_runs, capsys) -> None:
    args = (e2e_runs["stale"], e2e_runs["constant"], "--test", "randomization", "--samples", "300")
    code, out, _ = run_cli(capsys, *args, "--metric", "BLEU", "--json")
    assert code == 0
    report = json.loads(out)
    bleu = report["metrics"]["BLEU"]
    assert report["method"].startswith("approximate randomization") and bleu["samples"] == 300
    assert bleu["p_value"] == pytest.approx(1 / 301) and bleu["sacrebleu_p_value"] <= bleu["p_value"]
    assert len(report["warnings"]) == 1 and "metrics.json says 0.5" in report["warnings"][0]


def synthetic_rouge_runs(base: Path, n_items: int = 30, seeds: int = 2) -> tuple[list[Path], list[Path]]:
    """Bare generations files for two settings, ``seeds`` runs each; A copies the reference more often."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    references = [" ".join(rng.choice(words, 8)) for _ in range(n_items)]
    sources = [f"doc {i}" for i in range(n_items)]

    def system(share: float, seed: int) -> list[str]:
        r = np.random.default_rng(seed)
        return [ref if r.random() < share else " ".join(r.choice(words, 8)) for ref in references]

    a = [write_run(base / f"a{s}", sources, system(0.8, s), [[r] for r in references]) for s in range(seeds)]
    b = [
        write_run(base / f"b{s}", sources, system(0.3, 100 + s), [[r] for r in references])
        for s in range(seeds)
    ]
    return [p / "generations.jsonl" for p in a], [p / "generations.jsonl" for p in b]


def test_seeds_by_items_from_the_command(tmp_path: Path, capsys) -> None:
    a, b = synthetic_rouge_runs(tmp_path, seeds=3)
    code, out, _ = run_cli(
        capsys, "--a", *a, "--b", *b[:2], "--b", b[2], "--suite", "rouge", "--samples", "300", "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["method"].startswith("multi-bootstrap") and report["suite"] == "rouge"
    assert list(report["metrics"]) == ["ROUGE_1", "ROUGE_2", "ROUGE_L"]
    for result in report["metrics"].values():
        assert result["seeds_a"] == result["seeds_b"] == 3
        assert result["p_value"] < 0.05 and result["ci95"][0] > 0
        assert 0 <= result["b"] <= result["a"] <= 100  # score_rouge's 0-100 scale
    code, out, _ = run_cli(
        capsys, "--a", *a, "--b", *b, "--suite", "rouge", "--samples", "100", "--metric", "rouge_lsum"
    )
    assert code == 0 and "A: 3 runs (seeds" in out and out.count("ROUGE_Lsum") == 1


def test_the_same_setting_against_itself_over_seeds(tmp_path: Path, capsys) -> None:
    a, _ = synthetic_rouge_runs(tmp_path)
    args = ("--a", *a, "--b", *a, "--paired-seeds", "--suite", "rouge", "--samples", "100", "--json")
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    for result in json.loads(out)["metrics"].values():
        assert result["p_value"] == 1.0 and result["difference"] == 0.0 and result["paired_seeds"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("source", "item 3 has source 'other doc' in the first and 'doc 2' in the second"),
        ("references", "item 3 ('doc 2') has different references"),
        ("length", "has 29 items but"),
    ],
)
def test_runs_on_different_items_are_rejected_naming_the_first_mismatch(
    tmp_path: Path, capsys, change: str, message: str
) -> None:
    a, _ = synthetic_rouge_runs(tmp_path, seeds=1)
    records = [json.loads(line) for line in a[0].read_text().splitlines()]
    if change == "source":
        records[2]["source"] = "other doc"
    elif change == "references":
        records[2]["references"] = ["something else"]
    else:
        records = records[:-1]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, err = run_cli(capsys, a[0], other, "--suite", "rouge")
    assert code == 2 and out == ""
    assert err.startswith("prefixlab compare: ") and message in err and str(other) in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{a}", "{missing}"], "no such run folder or generations file: {missing}"),
        (["{a}", "{empty_dir}"], "is a folder without generations.jsonl"),
        (["{a}", "{a}"], "pass --suite"),
        (["{a}", "{a}", "--suite", "rouge", "--metric", "BLEU"], "unknown metric 'BLEU' for the rouge suite"),
        (
            ["--a", "{a}", "{a}", "--b", "{a}", "--test", "randomization", "--suite", "rouge"],
            "needs one run per side",
        ),
        (
            ["--a", "{a}", "{a}", "--b", "{a}", "--paired-seeds", "--suite", "rouge"],
            "as many runs on both sides",
        ),
        (["{a}", "--a", "{a}", "--b", "{a}", "--suite", "rouge"], "not both"),
        (["{a}", "--suite", "rouge"], "expected two runs"),
        (["{a}", "{bad}", "--suite", "rouge"], "bad.jsonl:2: missing output"),
    ],
)
def test_bad_inputs_fail_with_one_clear_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    a, _ = synthetic_rouge_runs(tmp_path, seeds=1)
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        a[0].read_text().splitlines()[0] + "\n" + json.dumps({"source": "x", "references": ["y"]}) + "\n"
    )
    names = {"a": a[0], "missing": tmp_path / "nope", "empty_dir": tmp_path / "empty", "bad": bad}
    code, out, err = run_cli(capsys, *(arg.format(**names) for arg in args))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message.format(**names) in err


def test_the_statistics_import_without_torch() -> None:
    """Reports import prefixlab.stats: it (and the compare command's parser) must not need torch."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import prefixlab.stats as s\n"
        "from prefixlab.stats import compare, interval, multi_bootstrap, paired_test, item_statistics, cell_intervals\n"
        "import prefixlab.stats.command, prefixlab.stats.runs, prefixlab.stats.decompose\n"
        "from prefixlab.cli import build_parser; build_parser().parse_args(['compare', 'a', 'b'])\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
