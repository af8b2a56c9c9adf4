"""Metrics also go to TensorBoard event files, read back here with a reader of the
file format written out below (TFRecord framing with masked CRC-32C, Event protos),
independent of the writer's own code."""

import math
import struct

import pytest
from tensorboardX.proto.event_pb2 import Event, SessionLog
from train_helpers import load_config

from jlstm.train import MetricsWriter, read_metrics, train_and_evaluate


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(path) -> list[Event]:
    """Every Event of one file: records of (u64 length, u32 masked CRC of the length,
    data, u32 masked CRC of the data), little-endian."""
    raw, events, at = path.read_bytes(), [], 0
    while at < len(raw):
        header = raw[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", raw[at + 8 : at + 12])[0] == _masked(header)
        data = raw[at + 12 : at + 12 + length]
        assert struct.unpack("<I", raw[at + 12 + length : at + 16 + length])[0] == _masked(data)
        events.append(Event.FromString(data))
        at += 16 + length
    return events


def event_files(folder):
    return sorted(folder.glob("events.out.tfevents.*"))


def scalars(folder) -> dict[tuple[str, int], float]:
    """(tag, step) -> value over every event file in ``folder``, in file order."""
    out = {}
    for path in event_files(folder):
        for event in read_events(path):
            for value in event.summary.value:
                out[value.tag, event.step] = value.simple_value
    return out


def test_records_are_written_as_scalars(tmp_path):
    writer = MetricsWriter(tmp_path / "metrics.jsonl", tensorboard=True)
    writer.truncate_after(0)
    writer.write(2, "train", {"loss": 0.5, "learning_rate": 1e-3})
    writer.write(4, "train", {"loss": float("nan"), "learning_rate": 2e-3})
    writer.write(4, "eval", {"accuracy": 0.75})
    writer.close()
    (path,) = event_files(tmp_path)
    assert read_events(path)[0].file_version == "brain.Event:2"
    got = scalars(tmp_path)
    assert got.pop(("train/loss", 4)) != got.get(("train/loss", 4))  # NaN stays NaN
    assert got == pytest.approx(
        {
            ("train/loss", 2): 0.5,
            ("train/learning_rate", 2): 1e-3,
            ("train/learning_rate", 4): 2e-3,
            ("eval/accuracy", 4): 0.75,
        }
    )
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [2, 4, 4]  # JSON too


def test_records_are_on_disk_before_close(tmp_path):
    """A run killed between records keeps every record it wrote."""
    writer = MetricsWriter(tmp_path / "metrics.jsonl", tensorboard=True)
    writer.write(1, "train", {"loss": 1.5})
    assert scalars(tmp_path) == {("train/loss", 1): 1.5}
    writer.close()


def test_a_resumed_run_purges_the_steps_after_its_checkpoint(tmp_path):
    first = MetricsWriter(tmp_path / "metrics.jsonl", tensorboard=True)
    first.truncate_after(0)
    for step in (1, 2, 3, 4):
        first.write(step, "train", {"loss": float(step)})
    first.close()  # as if it stopped after step 4, with its last checkpoint at step 2

    again = MetricsWriter(tmp_path / "metrics.jsonl", tensorboard=True)
    again.truncate_after(2)
    again.write(3, "train", {"loss": 30.0})
    again.close()
    old, new = event_files(tmp_path)
    purge = [e for e in read_events(new) if e.session_log.status == SessionLog.START]
    assert [e.step for e in purge] == [3]  # TensorBoard hides steps >= 3 of earlier files
    assert scalars(tmp_path)["train/loss", 3] == 30.0
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_off_writes_no_event_file(tmp_path):
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    writer.write(1, "train", {"loss": 1.0})
    writer.close()
    assert event_files(tmp_path) == []


def test_without_tensorboardx_the_error_says_what_to_do(tmp_path, monkeypatch):
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] == "tensorboardX"]:
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(
        ImportError, match=r"config\.train\.tensorboard = True needs .*tensorboardX"
    ):
        MetricsWriter(tmp_path / "metrics.jsonl", tensorboard=True)


@pytest.mark.slow
def test_a_run_writes_event_files(tmp_path):
    config = load_config("adding")
    assert config.train.tensorboard
    train_and_evaluate(config, tmp_path, progress=False)
    got = scalars(tmp_path)
    steps = config.train.num_steps
    assert math.isfinite(got["train/loss", steps]) and ("eval/mse", steps) in got
