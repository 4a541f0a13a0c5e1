"""Task loading: presets, the data-folder lookup, real E2E/XSum files, generic files, the hub path, errors."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf
from test_tasks_support import require_data

from prefixlab.tasks import (
    DataFormatError,
    DataNotFoundError,
    TaskConfig,
    examples_from_hub,
    load_task,
    load_task_config,
    read_examples,
    resolve_data_dir,
    splits_from_hub,
)
from prefixlab.tasks import hub as tasks_hub
from prefixlab.tasks.config import CONF_TASK_DIR

E2E_FILES = ("e2e/devset.csv", "e2e/testset_w_refs.csv")
XSUM_FILE = "xsum/xsum-1000.jsonl"


# --- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CONF_TASK_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_loads(path: Path) -> None:
    cfg = TaskConfig.from_mapping(OmegaConf.load(path))
    assert cfg.name == path.stem
    assert load_task_config(path.stem) == cfg


def test_presets_compose_as_a_hydra_group() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_TASK_DIR.parent), version_base="1.3"):
        composed = compose(overrides=["+task=xsum", "+task.train_size=50"])
    cfg = TaskConfig.from_mapping(composed.task)
    assert (cfg.name, cfg.train_size, cfg.max_source_tokens) == ("xsum", 50, 512)


def test_unknown_and_bad_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown task config keys \\['sorce'\\]"):
        TaskConfig.from_mapping({"name": "x", "sorce": "local"})
    with pytest.raises(ValueError, match="task.source must be one of"):
        TaskConfig(name="x", source="web")
    with pytest.raises(ValueError, match="needs \\{source\\}"):
        TaskConfig(name="x", format={"decoder_only": {"source": "no placeholder", "target": "{target}"}})
    with pytest.raises(FileNotFoundError, match="presets"):
        load_task_config("no_such_task")


def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFIXLAB_DATA_DIR", raising=False)
    assert resolve_data_dir(None) == (tmp_path / "data", "./data (default)")
    monkeypatch.setenv("PREFIXLAB_DATA_DIR", "/from/env")
    assert resolve_data_dir(None) == (Path("/from/env"), "$PREFIXLAB_DATA_DIR")
    assert resolve_data_dir("/from/config") == (Path("/from/config"), "task.data_dir")


# --- the real offline data ----------------------------------------------------------------------


@pytest.mark.data
def test_e2e_local_trains_on_dev_with_mr_disjoint_validation() -> None:
    require_data(*E2E_FILES)
    data = load_task("e2e")
    train_mrs = {e.group for e in data.train}
    val_mrs = {e.group for e in data.validation}
    assert not train_mrs & val_mrs
    assert len(train_mrs | val_mrs) == 547
    assert len(data.train) + len(data.validation) == 4672
    assert 50 <= len(val_mrs) <= 60  # 10% of 547
    grouped = data.grouped("test")
    assert len(grouped) == 630
    assert sum(len(g.references) for g in grouped) == 4693
    assert grouped[0].source.startswith("name[Blue Spice], eatType[coffee shop], area[city centre]")
    info = data.metadata()
    assert info["source"] == "local" and info["location"].endswith("e2e")
    assert info["train_from"].startswith("devset.csv")
    assert info["split_groups"] == {"train": len(train_mrs), "validation": len(val_mrs), "test": 630}
    assert info["split_pairs"]["test"] == 4693
    assert info["holdout"]["group_key"] == "mr" and info["holdout"]["fractions"] == {"validation": 0.1}
    json.dumps(info)
    assert load_task("e2e").validation == data.validation  # deterministic


@pytest.mark.data
def test_e2e_holdout_fraction_and_salt_are_configurable() -> None:
    require_data(*E2E_FILES)
    base = {e.group for e in load_task("e2e").validation}
    wider = {e.group for e in load_task(load_task_config("e2e", validation_fraction=0.2)).validation}
    other = {e.group for e in load_task(load_task_config("e2e", split_salt="other")).validation}
    assert len(wider) == round(0.2 * 547) and base < wider  # hash ranks: the 10% slice lies inside the 20%
    assert other != base


@pytest.mark.data
def test_data_dir_may_point_at_the_task_folder_itself() -> None:
    root = require_data(*E2E_FILES)
    data = load_task(load_task_config("e2e", data_dir=str(root / "e2e"), source="local"))
    assert len(data.test) == 4693


@pytest.mark.data
def test_xsum_sample_split_by_id_hash() -> None:
    require_data(XSUM_FILE)
    data = load_task("xsum")
    sizes = [len(data.train), len(data.validation), len(data.test)]
    assert sizes == [800, 100, 100] and sum(sizes) == 1000
    ids = [{e.group for e in split} for split in (data.train, data.validation, data.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert load_task("xsum").test == data.test
    info = data.metadata()
    assert info["holdout"]["fractions"] == {"validation": 0.1, "test": 0.1}
    assert info["holdout"]["group_key"] == "id"
    other = load_task(load_task_config("xsum", validation_fraction=0.2, test_fraction=0.05))
    assert [len(other.train), len(other.validation), len(other.test)] == [750, 200, 50]
    assert all(len(g.references) == 1 for g in data.grouped("test"))


# --- generic files declared in YAML -------------------------------------------------------------


def _write_config(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "mytask.yaml"
    path.write_text(
        OmegaConf.to_yaml(OmegaConf.create({"name": "mytask", "data_dir": str(tmp_path), **values}))
    )
    return path


def test_generic_csv_with_group_column(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "eid,table,text\n" + "".join(f"t{i},cell {i},sentence {i}\n" for i in range(20))
    )
    (tmp_path / "test.csv").write_text(
        "eid,table,text\n1,a | b,first ref\n1,a | b,second ref\n2,c | d,only ref\n1,a | b,third ref\n"
    )
    cfg = _write_config(
        tmp_path,
        train_file="train.csv",
        test_file="test.csv",
        source_column="table",
        target_column="text",
        group_column="eid",
    )
    data = load_task(str(cfg))
    grouped = data.grouped("test")
    assert [(g.source, g.references) for g in grouped] == [
        ("a | b", ["first ref", "second ref", "third ref"]),
        ("c | d", ["only ref"]),
    ]
    assert len(data.train) + len(data.validation) == 20 and len(data.validation) == 2
    assert "train.csv" in data.metadata()["split_origin"]["validation"]


def test_generic_jsonl_single_file(tmp_path: Path) -> None:
    rows = [{"doc": f"document {i}", "sum": f"summary {i}", "key": i} for i in range(50)]
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _write_config(
        tmp_path, single_file="all.jsonl", source_column="doc", target_column="sum", group_column="key"
    )
    data = load_task(str(cfg))
    assert [len(data.train), len(data.validation), len(data.test)] == [40, 5, 5]
    assert data.test[0].group.isdigit()


# --- the hub path, tested offline with hub-schema datasets --------------------------------------


def _e2e_hub_dataset() -> datasets.DatasetDict:
    mrs = ["name[A], food[Thai]", "name[A], food[Thai]", "name[B]", "name[C]"]
    refs = ["A serves Thai food.", "Thai food at A.", "B is a place.", "C is too."]
    split = datasets.Dataset.from_dict({"meaning_representation": mrs, "human_reference": refs})
    return datasets.DatasetDict({"train": split, "validation": split, "test": split})


def test_e2e_hub_schema_conversion() -> None:
    cfg = load_task_config("e2e")
    splits = splits_from_hub(_e2e_hub_dataset(), cfg)
    assert sorted(splits) == ["test", "train", "validation"]
    assert splits["test"][1].source == "name[A], food[Thai]" and splits["test"][1].target == "Thai food at A."
    assert splits["test"][0].group == splits["test"][1].group


def test_xsum_hub_schema_conversion() -> None:
    hub = datasets.Dataset.from_dict(
        {"document": ["Doc one.", "Doc two."], "summary": ["One.", "Two."], "id": ["101", "102"]}
    )
    examples = examples_from_hub(hub, load_task_config("xsum"))
    assert [(e.source, e.target, e.group) for e in examples] == [
        ("Doc one.", "One.", "101"),
        ("Doc two.", "Two.", "102"),
    ]


def test_hub_schema_with_wrong_columns_names_them() -> None:
    hub = datasets.Dataset.from_dict({"mr": ["x"], "ref": ["y"]})
    with pytest.raises(DataFormatError, match="meaning_representation"):
        examples_from_hub(hub, load_task_config("e2e"))


def test_auto_falls_back_to_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def fake_load_dataset(name: str, config: str | None = None, split: str | None = None) -> datasets.Dataset:
        calls.append((name, config, split))
        return _e2e_hub_dataset()[split]

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(tasks_hub, "offline_reason", lambda: None)  # pretend the hub answers
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task(load_task_config("e2e", data_dir=str(tmp_path)))
    assert calls == [("e2e_nlg", None, "train"), ("e2e_nlg", None, "validation"), ("e2e_nlg", None, "test")]
    info = data.metadata()
    assert info["source"] == "hub" and info["location"] == "e2e_nlg" and info["holdout"] == {}
    assert len(data.grouped("test")) == 3


def test_no_local_files_and_offline_hub_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PREFIXLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError) as err:
        load_task("e2e")
    message = str(err.value)
    for needed in (
        "testset_w_refs.csv",
        "trainset.csv",
        "devset.csv",
        str(tmp_path / "e2e"),
        "HF_HUB_OFFLINE",
    ):
        assert needed in message
    assert "PREFIXLAB_DATA_DIR" in message and "task.data_dir" in message


def test_unreachable_hub_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'EdinburghNLP/xsum' on the Hub")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(tasks_hub, "offline_reason", lambda: None)  # the probe passes, the download fails
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataNotFoundError, match="(?s)EdinburghNLP/xsum.*xsum-1000.jsonl.*PREFIXLAB_DATA_DIR"):
        load_task(load_task_config("xsum", data_dir=str(tmp_path)))


def test_no_network_fails_in_seconds_without_retrying(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket
    import time

    from huggingface_hub import constants as hf_constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    for var in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: pytest.fail("hub client called without network")
    )
    start = time.perf_counter()
    with pytest.raises(
        DataNotFoundError, match="(?s)no connection to http://127.0.0.1.*devset.csv.*PREFIXLAB_DATA_DIR"
    ):
        load_task(load_task_config("e2e", data_dir=str(tmp_path)))
    assert time.perf_counter() - start < 10


def test_source_local_never_tries_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("hub was called"))
    with pytest.raises(DataNotFoundError, match="local data not found"):
        load_task(load_task_config("xsum", data_dir=str(tmp_path), source="local"))


# --- bad input ----------------------------------------------------------------------------------


def test_csv_without_expected_columns(tmp_path: Path) -> None:
    path = tmp_path / "devset.csv"
    path.write_text("meaning,reference\na,b\n")
    with pytest.raises(DataFormatError) as err:
        read_examples(path, "mr", "ref")
    message = str(err.value)
    assert str(path) in message and "['meaning', 'reference']" in message and "['mr', 'ref']" in message


@pytest.mark.parametrize(
    ("body", "where", "column"),
    [
        ("mr,ref\na,b\n,c\n", "row 3", "mr"),
        ('mr,ref\na,b\nc,b\nd,"  "\n', "row 4", "ref"),
        ("mr,ref\na,b\nc\n", "row 3", "ref"),
    ],
)
def test_csv_empty_field_names_the_row(tmp_path: Path, body: str, where: str, column: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(body)
    with pytest.raises(DataFormatError, match=f"{where} .*has an empty '{column}'"):
        read_examples(path, "mr", "ref")


def test_jsonl_empty_field_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"document": "d", "summary": "s"}\n\n{"document": "d2", "summary": null}\n')
    with pytest.raises(DataFormatError, match="line 3 has an empty 'summary'"):
        read_examples(path, "document", "summary")


@pytest.mark.parametrize(("name", "body", "match"), [
    ("empty.csv", "", "the file is empty"),
    ("blank.jsonl", "\n\n", "the file is empty"),
    ("header.csv", "mr,ref\n", "no data rows"),
    ("ragged.csv", "mr,ref\na,b\nc,d,e\n", "cannot parse as csv.*line 3"),
    ("broken.jsonl", '{"document": "d"\n', "cannot parse as jsonl"),
    ("data.txt", "mr,ref\na,b\n", "set task.file_format"),
])  # fmt: skip
def test_unreadable_files(tmp_path: Path, name: str, body: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(DataFormatError, match=match):
        read_examples(path, "mr", "ref")


def test_missing_training_split_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dev.csv").write_text("mr,ref\na,b\n")
    (tmp_path / "test.csv").write_text("mr,ref\na,b\n")
    cfg = load_task_config(
        _write_config(
            tmp_path, validation_file="dev.csv", test_file="test.csv", source_column="mr", target_column="ref"
        )
    )
    with pytest.raises(DataNotFoundError, match="allow_train_from_validation"):
        load_task(cfg.__class__(**{**cfg.to_dict(), "source": "local"}))


def test_full_local_e2e_layout_uses_the_official_splits(tmp_path: Path) -> None:
    folder = tmp_path / "e2e"
    folder.mkdir()
    for name, mrs in (("trainset.csv", "abc"), ("devset.csv", "de"), ("testset_w_refs.csv", "fg")):
        (folder / name).write_text(
            "mr,ref\n" + "".join(f"name[{m}],{m} ref {k}\n" for m in mrs for k in (1, 2))
        )
    data = load_task(load_task_config("e2e", data_dir=str(tmp_path)))
    assert [len(data.train), len(data.validation), len(data.test)] == [6, 4, 4]
    info = data.metadata()
    assert info["train_from"] == "trainset.csv" and info["holdout"] == {}
    assert info["split_origin"] == {
        "train": "trainset.csv",
        "validation": "devset.csv",
        "test": "testset_w_refs.csv",
    }
    assert info["split_groups"] == {"train": 3, "validation": 2, "test": 2}


def test_hub_without_a_validation_split_holds_one_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = {
        "document": [f"doc {i}" for i in range(30)],
        "summary": ["s"] * 30,
        "id": [str(i) for i in range(30)],
    }
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(tasks_hub, "offline_reason", lambda: None)  # pretend the hub answers
    monkeypatch.setattr(
        datasets, "load_dataset", lambda name, config, split: datasets.Dataset.from_dict(rows)
    )
    cfg = load_task_config("xsum", data_dir=str(tmp_path), source="hub", hub_validation_split=None)
    data = load_task(cfg)
    assert [len(data.train), len(data.validation), len(data.test)] == [27, 3, 30]
    assert data.metadata()["split_origin"]["validation"].startswith("hub split 'train': 10% of its groups")
