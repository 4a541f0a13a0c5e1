"""The paper's claims as data, and verdicts computed from a study's runs.

`experiments/<name>/claims.csv` lists each claim the paper makes in that experiment, one per line:

    claim,a,b,relation,metric,source
    PREFIX beats INFIX-1,PREFIX,INFIX-1,>,BLEU,Table 5

`a` and `b` name rows: a run label (`PREFIX-10`), or, where runs share a label, the settings that tell them
apart as `column=value` pairs joined by `&`, as in paper.csv (`method.reparam=mlp&method.init=random`); `relation` is `>`
(a scores higher than b), `=` (a and b are equal) or `>=` (a matches or beats b: not worse). `verdicts` compares the two rows' runs with the seeds x items multi-bootstrap of `prefixlab.stats`
(the difference a - b, its 95% interval, a two-sided p-value) and decides:

- `>`: **holds** when the interval lies above 0, **reversed** when below, else **not distinguishable**;
- `=`: **holds (not distinguishable)** when the interval contains 0, else **does not hold**;
- `>=`: **holds (higher)** when the interval lies above 0, **holds (not distinguishable)** when it contains 0,
  **does not hold** when it lies below 0.

A claim whose rows were not both run is **not run**. `write_claims` writes `claims.md`. It needs the run
folders (their `generations.jsonl`), not only `runs.csv`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefixlab.resources import EXPERIMENTS_DIR

RELATIONS = (">", "=", ">=")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper about two rows of a study."""

    claim: str
    a: str
    b: str
    relation: str
    metric: str
    source: str


@dataclass(frozen=True)
class Verdict:
    """A claim with the evidence the runs give for it."""

    claim: Claim
    verdict: str
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    seeds: tuple[int, int] = (0, 0)
    items: int = 0


def load_claims(experiment: str, root: Path = EXPERIMENTS_DIR) -> list[Claim]:
    """The claims of an experiment (`experiments/<experiment>/claims.csv`), or none; bad rows are errors."""
    path = root / experiment / "claims.csv"
    if not path.is_file():
        return []
    claims = []
    with path.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            if None in row:
                raise ValueError(
                    f"{path}:{number}: more fields than the header names ({row[None]} left over): "
                    "quote a field that holds a comma"
                )
            if (
                row.get("relation") not in RELATIONS
                or not row.get("a")
                or not row.get("b")
                or not row.get("metric")
            ):
                raise ValueError(
                    f"{path}:{number}: needs a, b, metric and relation in {RELATIONS}; got {row}"
                )
            claims.append(Claim(**{key: row[key].strip() for key in Claim.__dataclass_fields__}))
    return claims


def decide(relation: str, low: float, high: float) -> str:
    """The verdict of a claim from the 95% interval of a - b."""
    if relation == ">":
        return "holds" if low > 0 else "reversed" if high < 0 else "not distinguishable"
    if relation == ">=":
        return "holds (higher)" if low > 0 else "does not hold" if high < 0 else "holds (not distinguishable)"
    return "holds (not distinguishable)" if low <= 0 <= high else "does not hold"


def rows_of(frame: pd.DataFrame, name: str) -> pd.Series:
    """The runs a claim's row names: by `label`, or by `column=value&...` settings in the syntax of paper.csv's
    `match` (`prefixlab.report.paper.parse_match`); a missing column or a value no run has selects nothing, so
    the claim reads "not run"."""
    from prefixlab.report.paper import parse_match

    if "=" not in name:
        return frame["label"] == name
    keep = pd.Series(True, index=frame.index)
    for column, allowed in parse_match(name).items():
        if column not in frame:
            return pd.Series(False, index=frame.index)
        keep &= frame[column].map(lambda cell, values=allowed: any(_same(cell, v) for v in values))
    return keep


def _same(cell: Any, text: str) -> bool:
    """A run's setting equals a claim's written value (numbers by value: `1e-2` is `0.01`)."""
    try:
        return float(cell) == float(text)
    except (TypeError, ValueError):
        return str(cell) == text


def verdicts(
    frame: pd.DataFrame, claims: list[Claim], n_samples: int = 1000, seed: int = 12345
) -> list[Verdict]:
    """Each claim's verdict from the runs in `frame` (rows by `label`, run folders in `run_dir`)."""
    from prefixlab.stats import load_generations, multi_bootstrap, run_statistics

    out = []
    cache: dict[str, dict[str, Any]] = {}
    suite = str(frame["metric_suite"].dropna().iloc[0]) if "metric_suite" in frame and len(frame) else "e2e"
    for claim in claims:
        dirs = {
            side: list(frame.loc[rows_of(frame, name), "run_dir"])
            for side, name in (("a", claim.a), ("b", claim.b))
        }
        if not dirs["a"] or not dirs["b"]:
            out.append(Verdict(claim, "not run"))
            continue
        per_side = {}
        for side, paths in dirs.items():
            stats = []
            for path in paths:
                if path not in cache:
                    (cache[path],) = run_statistics([load_generations(path)], suite)
                stats.append(cache[path][claim.metric])
            per_side[side] = stats
        result = multi_bootstrap(per_side["a"], per_side["b"], n_samples=n_samples, seed=seed)
        low, high = result.difference.bounds()
        out.append(
            Verdict(
                claim,
                decide(claim.relation, low, high),
                result.difference.estimate,
                low,
                high,
                result.p_value,
                (result.n_seeds_a, result.n_seeds_b),
                result.n_items,
            )  # fmt: skip
        )
    return out


def to_markdown(study: str, results: list[Verdict], scale: dict[str, float]) -> str:
    """`claims.md`: each claim, the effect (a - b on the paper's scale), its interval, p and the verdict."""
    lines = [
        f"# Claims of the paper, tested on {study}",
        "",
        "Effect: row a minus row b on the paper's scale, the mean over seeds; 95% interval and two-sided p-value",
        "from the multi-bootstrap over seeds and test items (`prefixlab.stats.multi_bootstrap`).",
        "",
        "| claim | source | metric | effect | 95% interval | p | seeds (a, b) | items | verdict |",
        "|:--|:--|:--|--:|--:|--:|--:|--:|:--|",
    ]
    for v in results:
        c, k = v.claim, scale.get(v.claim.metric, 1.0)
        if v.difference is None:
            lines.append(f"| {c.claim} | {c.source} | {c.metric} | — | — | — | — | — | {v.verdict} |")
            continue
        lines.append(
            f"| {c.claim} | {c.source} | {c.metric} | {k * v.difference:+.2f} | [{k * v.low:+.2f}, {k * v.high:+.2f}] "
            f"| {v.p_value:.3g} | {v.seeds[0]}, {v.seeds[1]} | {v.items} | **{v.verdict}** |"
        )
    return "\n".join(lines) + "\n"


def write_claims(
    out: Path, study: str, experiment: str | None, frame: pd.DataFrame, scale: dict[str, float]
) -> Path | None:
    """Write `out/claims.md` when the experiment has claims and the runs' folders hold their generations."""
    claims = load_claims(experiment) if experiment else []
    if not claims or "run_dir" not in frame:
        return None
    if not all(Path(str(d), "generations.jsonl").is_file() for d in frame["run_dir"].dropna()):
        return None
    from prefixlab.report.selection import select_on_validation

    # A row swept over learning rates: only its rate chosen on validation.
    frame, _ = select_on_validation(frame)
    path = out / "claims.md"
    path.write_text(to_markdown(study, verdicts(frame, claims), scale), encoding="utf-8")
    return path
