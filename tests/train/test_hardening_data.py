"""Data that cannot be used stops a run before any work with a ConfigError naming the
file (one line from the command line), and leaves no workdir behind."""

import pytest
from train_helpers import finish, load_config, run_train_py

from jlstm.train import ConfigError, train_and_evaluate

TRAIN = "@classLabel true a b\n@data\n1,2:3,4:a\n5,6:7,8:b\n1,1:2,2:a\n3,3:4,4:b\n"


def charlm_on(path):
    config = load_config("charlm")
    config.data.name, config.data.path = "text", str(path)
    return config


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", r"holds 0 characters; a corpus needs at least 2"),
        (b"x", r"holds 1 character; a corpus needs at least 2"),
        (b"\xff\xfe\x00\x01", r"is not utf-8 text: byte 0xff at offset 0"),
    ],
)
def test_unusable_corpus_files(tmp_path, content, match):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"^config.data: {path} {match}"):
        train_and_evaluate(charlm_on(path), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_corpus_paths_that_are_not_files(tmp_path):
    """(Caught by the config check or by the loader, whichever comes first.)"""
    with pytest.raises(ConfigError, match=r"config.data.* '.*nothing.txt'"):
        train_and_evaluate(charlm_on(tmp_path / "nothing.txt"), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match=rf"config.data.* '{tmp_path}'"):
        train_and_evaluate(charlm_on(tmp_path), tmp_path / "run", progress=False)


def ucr_config(folder):
    config = load_config("default")
    config.data.name = str(folder)
    config.data.batch_size = 2
    return config


@pytest.mark.parametrize(
    "test_text, match",
    [
        (None, r"Toy_TEST.ts does not exist"),
        ("@classLabel true a b\n@data\n1,2:a\n", r"Toy_TEST.ts: cases have 1 channels; "),
        ("@classLabel true a b c\n@data\n1,2:3,4:c\n", r"Toy_TEST.ts:3: class 'c' is not a class"),
        ("@classLabel true a b\n@data\n1,2:3,4\n", r"Toy_TEST.ts:3: the label '3,4' is not"),
    ],
)
def test_a_missing_or_mismatched_test_file(tmp_path, test_text, match):
    folder = tmp_path / "Toy"
    folder.mkdir()
    (folder / "Toy_TRAIN.ts").write_text(TRAIN)
    if test_text is not None:
        (folder / "Toy_TEST.ts").write_text(test_text)
    with pytest.raises(ConfigError, match=rf"^config.data.*{match}"):
        train_and_evaluate(ucr_config(folder), tmp_path / "run", progress=False)


@pytest.mark.slow
def test_the_command_line_prints_one_line(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    proc = run_train_py(
        "--config",
        "configs/charlm.py:smoke",
        "--workdir",
        str(tmp_path / "run"),
        "--config.data.name=text",
        f"--config.data.path={path}",
    )
    code, out, err = finish(proc)
    assert code == 2
    assert err.strip().splitlines() == [
        f"config error: config.data: {path} holds 0 characters; a corpus needs at least 2"
    ]
