"""The README's library example runs as written and learns its toy batch."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_trains_a_prefix_that_reproduces_the_target(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["loss"].item() < 0.5
    assert (tmp_path / "my_prefix" / "prefix.safetensors").is_file()
    assert namespace["pm"].parameter_report()["stored_parameters"] == 10 * 30 * 2 * 3 * 64
    assert capsys.readouterr().out.strip() == "['Aromi is a pub.']"
