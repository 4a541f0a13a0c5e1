"""Adding a method is one module plus one yaml: a BitFit method (only the biases train) written outside
prefixlab, with its config in a user config folder on Hydra's search path, runs through the app and gets its
own row name in the record and the report, without touching prefixlab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from test_tasks_support import require_data

from prefixlab.provenance import REPO_ROOT
from prefixlab.report.collect import collect_runs

BITFIT = '''
"""BitFit (Ben Zaken et al. 2022): only the bias terms of the frozen model train."""
from dataclasses import dataclass
from typing import Literal

from prefixlab.methods.finetune import FineTuneModel
from prefixlab.methods.registry import MethodSpec


@dataclass
class BitFitSettings:
    biases: Literal["all", "attention"] = "all"


class BitFitModel(FineTuneModel):
    def __init__(self, base, settings):
        super().__init__(base, "none")
        self.settings = settings
        for name, parameter in base.named_parameters():
            parameter.requires_grad_(name.endswith("bias") and (settings.biases == "all" or "attn" in name))


METHOD = MethodSpec(
    kind="mymethods.bitfit", settings=BitFitSettings,
    build=lambda base, settings, tokenizer: BitFitModel(base, settings),
    load=FineTuneModel.load, label=lambda settings: f"BitFit-{settings.biases}",
)
'''


def test_a_method_from_outside_prefixlab_runs_through_the_app_and_the_report(tmp_path):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    (tmp_path / "code" / "mymethods").mkdir(parents=True)
    (tmp_path / "code" / "mymethods" / "__init__.py").write_text("")
    (tmp_path / "code" / "mymethods" / "bitfit.py").write_text(textwrap.dedent(BITFIT))
    (tmp_path / "conf" / "method").mkdir(parents=True)
    (tmp_path / "conf" / "method" / "bitfit.yaml").write_text("kind: mymethods.bitfit\nbiases: attention\n")
    env = {**os.environ, "PREFIXLAB_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(tmp_path / "code")}
    args = ["method=bitfit", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "study=plugin", "model=tiny-gpt2",
            "logger=none", "trainer.max_steps=2", "trainer.batch_size=4", "trainer.eval_max_examples=4",
            "eval.max_groups=2", "task.decoding.num_beams=1", "task.decoding.max_new_tokens=4"]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "prefixlab.train", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (record_path,) = (tmp_path / "runs" / "plugin").glob("*/metrics.json")
    record = json.loads(record_path.read_text())
    assert record["label"] == "BitFit-attention" and record["training"]["trained"]
    trainable = record["parameters"]["trainable_parameters"]
    assert 0 < trainable < record["parameters"]["base_parameters"] / 10  # the attention biases only
    frame = collect_runs(tmp_path / "runs" / "plugin").frame
    assert list(frame["label"]) == ["BitFit-attention"]

    bad = subprocess.run([sys.executable, "-m", "prefixlab.train", *args, "method.biases=some"], cwd=REPO_ROOT,
                         env={**env, "PREFIXLAB_RUNS": str(tmp_path / "runs2")}, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert bad.returncode != 0 and "method.biases='some': input should be 'all' or 'attention'" in bad.stderr
