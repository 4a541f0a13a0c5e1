"""Golden tests: `score_e2e` against the official E2E script's scores on the real E2E test set.

Needs, under ``$PREFIXLAB_DATA_DIR`` (the folder holding ``e2e/`` and ``xsum/``):
``e2e/testset_w_refs.csv`` and ``e2e/golden/{template630.txt,short630.txt,official_scores.json}``.
Missing data fails the tests when ``CI`` is set and skips them otherwise. Also needs Java (METEOR).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_tasks_support import require_data

from prefixlab.metrics import E2E_METRICS, E2EReport, score_e2e_detailed

pytestmark = pytest.mark.data

GOLDEN_SYSTEMS = ("template630", "short630")
REQUIRED_FILES = (
    "e2e/testset_w_refs.csv",
    "e2e/golden/template630.txt",
    "e2e/golden/short630.txt",
    "e2e/golden/official_scores.json",
)
TOLERANCE = 1e-4


def data_dir() -> Path:
    """The data folder from ``PREFIXLAB_DATA_DIR``; fail (under CI) or skip when files are missing."""
    return require_data(*REQUIRED_FILES)


def load_grouped_references(csv_path: Path) -> list[list[str]]:
    """References grouped by MR (consecutive rows), MRs in order of first appearance."""
    groups: list[list[str]] = []
    previous_mr = None
    with csv_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["mr"] != previous_mr:
                groups.append([])
                previous_mr = row["mr"]
            groups[-1].append(row["ref"])
    return groups


def read_lines(path: Path) -> list[str]:
    """One system output per line."""
    return path.read_text(encoding="utf-8").splitlines()


class GoldenData:
    """The golden inputs and our scores, loaded on first use inside a test.

    Loading inside the test body (not in fixture setup) makes missing data show up as a FAILED
    test under CI (or a skip elsewhere) instead of a fixture ERROR.
    """

    def __init__(self) -> None:
        self._official: dict[str, dict] | None = None
        self._reports: dict[str, E2EReport] | None = None

    def official(self) -> dict[str, dict]:
        """``official_scores.json``: per system, the five scores and ``official_cli_4dp``."""
        if self._official is None:
            path = data_dir() / "e2e/golden/official_scores.json"
            self._official = json.loads(path.read_text(encoding="utf-8"))
        return self._official

    def reports(self) -> dict[str, E2EReport]:
        """Our scores of both golden systems, computed once (~10-15 s each, mostly METEOR's JVM)."""
        if self._reports is None:
            root = data_dir()
            refs = load_grouped_references(root / "e2e/testset_w_refs.csv")
            self._reports = {
                name: score_e2e_detailed(read_lines(root / f"e2e/golden/{name}.txt"), refs)
                for name in GOLDEN_SYSTEMS
            }
        return self._reports


@pytest.fixture(scope="module")
def golden() -> GoldenData:
    """One lazily loaded `GoldenData` per module, so each golden system is scored once."""
    return GoldenData()


def test_test_set_shape():
    root = data_dir()
    refs = load_grouped_references(root / "e2e/testset_w_refs.csv")
    assert len(refs) == 630
    assert sum(len(group) for group in refs) == 4693
    for name in GOLDEN_SYSTEMS:
        assert len(read_lines(root / f"e2e/golden/{name}.txt")) == 630


@pytest.mark.parametrize("metric", E2E_METRICS)
@pytest.mark.parametrize("system", GOLDEN_SYSTEMS)
def test_matches_official_script(golden, system, metric):
    ours = golden.reports()[system].scores[metric]
    official = golden.official()[system][metric]
    assert abs(ours - official) <= TOLERANCE, f"{system} {metric}: ours {ours!r} vs official {official!r}"


@pytest.mark.parametrize("system", GOLDEN_SYSTEMS)
def test_matches_official_cli_rounding(golden, system):
    for metric, printed in golden.official()[system]["official_cli_4dp"].items():
        assert f"{golden.reports()[system].scores[metric]:.4f}" == f"{printed:.4f}"


def test_short_system_brevity_penalty(golden):
    # The golden README: the short system's BLEU brevity penalty is 0.5187.
    assert golden.reports()["short630"].bleu.brevity_penalty == pytest.approx(0.5187, abs=1e-4)
    assert golden.reports()["template630"].bleu.brevity_penalty == 1.0
