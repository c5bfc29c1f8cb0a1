"""read_wandb_offline & co. on real offline runs, and the .wandb framing on crafted files."""

from __future__ import annotations

import json
import math
import struct
import warnings
import zlib

import numpy as np
import pytest

from shiftkit.records import (
    BLOCK_SIZE,
    GLOBAL_STEP,
    SHIFT_MEAN_KL_GAUSS,
    STATS,
    TRAIN_LOSS,
    WANDB_FILE_HEADER,
    TruncatedRunWarning,
    find_wandb_run_file,
    iter_wandb_records,
    read_wandb_offline,
    read_wandb_offline_config,
    read_wandb_offline_summary,
    shift_key,
    shift_long_format,
    wait_for_wandb_run,
)

wandb = pytest.importorskip("wandb")

COUNTS = np.array([3, 0, 5, 2])
EDGES = np.array([-1.0, -0.5, 0.0, 0.25, 1.0])
BIG_SITES = [f"encoder.block.{i}.conv@out" for i in range(150)]  # 2400 keys: a 150 kB record
BIG_STEPS = (5, 6)


def small_metrics(step: int) -> dict:
    return {
        shift_key("net.0@out", "kl_gauss"): step / 3,
        shift_key("enc/block.1", "p50"): -0.1 * step,
        SHIFT_MEAN_KL_GAUSS: 1e-7 * step,
        "train/loss": 2.0 ** -step,
        "diverged": 0.0,
    }


def big_metrics(step: int) -> dict:
    return {shift_key(site, stat): step + i / 7 + j for i, site in enumerate(BIG_SITES)
            for j, stat in enumerate(STATS)}


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, offline_wandb):
    """One offline run: small steps 0-3, a histogram at 4, 2400-key steps 5-6, NaN/inf at 7."""
    with offline_wandb(tmp_path_factory.mktemp("wandb_run")) as root:
        run = wandb.init(mode="offline", dir=root, project="t",
                         config={"lr": 0.1, "model": {"width": 8, "norm": "batch"}})
        for step in range(4):
            run.log(small_metrics(step), step=step)
        run.log({"shift/fc1/hist": wandb.Histogram(np_histogram=(COUNTS, EDGES)),
                 "nested": {"a": 1.5}}, step=4)
        for step in BIG_STEPS:
            run.log(big_metrics(step), step=step)
        run.log({"train/loss": float("nan"), "diverged": 1.0, "inf": -math.inf}, step=7)
        run.summary["best_val_acc"] = 0.5
        run.finish()
        wait_for_wandb_run(root)  # finish() may return before wandb-core writes the file
    return root


def test_history_reads_back_exactly_per_step(offline_run):
    df = read_wandb_offline(offline_run / "wandb")
    assert df["_step"].tolist() == list(range(8))
    assert df.attrs["complete"]
    by_step = df.set_index("_step")
    for step in range(4):
        for key, value in small_metrics(step).items():
            assert by_step.at[step, key] == value, (step, key)
    for step in BIG_STEPS:
        row = by_step.loc[step]
        assert all(row[key] == value for key, value in big_metrics(step).items())
    hist = by_step.at[4, "shift/fc1/hist"]
    assert hist == {"_type": "histogram", "values": COUNTS.tolist(), "bins": EDGES.tolist()}
    assert by_step.at[4, "nested.a"] == 1.5
    assert math.isnan(by_step.at[7, "train/loss"]) and by_step.at[7, "inf"] == -math.inf
    assert by_step.at[7, "diverged"] == 1.0

    long = shift_long_format(df, step_col="_step")
    assert len(long) == 4 * 2 + 2 * len(BIG_SITES) * len(STATS)


def test_records_larger_than_two_blocks_are_joined(offline_run):
    # Each 2400-key history record spans FIRST, MIDDLE and LAST chunks: a wrong join would
    # fail the per-chunk checksum or the protobuf parse, or lose values above.
    run_file = find_wandb_run_file(offline_run)
    sizes = [len(payload) for payload in iter_wandb_records(run_file)]
    assert max(sizes) > 2 * BLOCK_SIZE
    assert run_file.read_bytes()[:7] == b":W&B\xe1\xbe\x00" == WANDB_FILE_HEADER


def test_every_path_form_finds_the_same_run(offline_run):
    run_file = find_wandb_run_file(offline_run)
    run_id = run_file.stem.removeprefix("run-")
    assert run_file.parent.name.startswith("offline-run-") and run_file.parent.name.endswith(run_id)
    for path in (run_file, run_file.parent, offline_run / "wandb", offline_run):
        assert find_wandb_run_file(path) == run_file
    assert find_wandb_run_file(offline_run, run_id=run_id) == run_file
    with pytest.raises(FileNotFoundError, match="nope"):
        find_wandb_run_file(offline_run, run_id="nope")


def test_summary_and_config(offline_run):
    summary = read_wandb_offline_summary(offline_run)
    assert summary["best_val_acc"] == 0.5
    assert summary[shift_key("net.0@out", "kl_gauss")] == 1  # last logged: step 3 -> 3/3
    assert summary[shift_key(BIG_SITES[-1], "nonfinite")] == 6 + 149 / 7 + STATS.index("nonfinite")
    assert summary["shift/fc1/hist"]["values"] == COUNTS.tolist()
    assert "_wandb" not in summary
    assert read_wandb_offline_config(offline_run) == {
        "lr": 0.1, "model": {"width": 8, "norm": "batch"}}


def test_truncated_copy_reads_a_prefix_with_a_warning(offline_run, tmp_path):
    run_file = find_wandb_run_file(offline_run)
    full = read_wandb_offline(run_file)
    data = run_file.read_bytes()
    # Two adjacent cuts inside the 2400-key records: at most one can fall on a record end.
    warned = 0
    for cut in (len(data) // 2, len(data) // 2 + 1):
        truncated = tmp_path / f"cut{cut}" / run_file.name
        truncated.parent.mkdir()
        truncated.write_bytes(data[:cut])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            part = read_wandb_offline(truncated)
        warned += any(issubclass(w.category, TruncatedRunWarning) for w in caught)
        assert not part.attrs["complete"]
        assert 5 <= len(part) < len(full)  # steps 0-4 lie well before the middle
        assert part["_step"].tolist() == full["_step"].tolist()[: len(part)]
        assert part.iloc[4]["shift/fc1/hist"] == full.iloc[4]["shift/fc1/hist"]
    assert warned >= 1


def test_lightning_wandb_logger_keyed_by_global_step(wandb_sandbox, fit_two_layer):
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(offline=True, save_dir=wandb_sandbox, project="t")
    try:
        module, logged = fit_two_layer(logger)
        # live: no exit record yet, and wandb-core still holds the current block in memory
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedRunWarning)
            assert not read_wandb_offline(wandb_sandbox).attrs["complete"]
    finally:
        wandb.finish()
    wait_for_wandb_run(wandb_sandbox)

    df = read_wandb_offline(wandb_sandbox, step_col=GLOBAL_STEP)
    # module's self.log lands at steps 0-5, the callback's log_metrics at global steps 1-6
    assert df[GLOBAL_STEP].tolist() == list(range(len(logged) + 1))
    by_step = df.set_index(GLOBAL_STEP)
    for step, metrics in logged.items():
        for key, value in metrics.items():
            assert by_step.at[step, key] == value, (step, key)
    assert by_step[TRAIN_LOSS].iloc[:-1].tolist() == module.losses
    assert len(read_wandb_offline(wandb_sandbox)) > len(df)  # several W&B steps per trainer step


# --- framing, on files written by an independent LevelDB-log writer ----------------------------


def frame(payloads: list[bytes]) -> bytes:
    """Write payloads as wandb-core does: header in block 0, zero pad < 7, FIRST/MIDDLE/LAST."""
    out = bytearray(WANDB_FILE_HEADER)
    for payload in payloads:
        first = True
        while True:
            room = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if room < 7:
                out += bytes(room)
                continue
            piece, payload = payload[: room - 7], payload[room - 7 :]
            kind = (1 if not payload else 2) if first else (4 if not payload else 3)
            out += struct.pack("<IHB", zlib.crc32(bytes([kind]) + piece), len(piece), kind) + piece
            first = False
            if not payload:
                break
    return bytes(out)


# Sizes that walk the writer through its edge cases, block by block (B = 32 KiB):
# block 0: 7-byte file header + record 0 (7 + B-17 bytes) leaves 3 bytes of zero padding;
# block 1: record 1 (7 + B-14) leaves exactly 7 bytes, so record 2 starts there with an
#          empty FIRST chunk and ends in block 2 with a 100-byte LAST chunk;
# block 2: record 3 (7 + B-114) fills the block to its last byte;
# blocks 3-5: record 4 is FIRST, MIDDLE, LAST; then a small FULL record.
EDGE_SIZES = [BLOCK_SIZE - 17, BLOCK_SIZE - 14, 100, BLOCK_SIZE - 114, 70_000, 5]


def test_framing_edge_cases_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    payloads = [rng.bytes(n) for n in EDGE_SIZES]
    data = frame(payloads)

    def chunk_at(offset):  # (length, type)
        return struct.unpack_from("<IHB", data, offset)[1:]

    assert data[BLOCK_SIZE - 3 : BLOCK_SIZE] == bytes(3)
    assert chunk_at(2 * BLOCK_SIZE - 7) == (0, 2) and chunk_at(2 * BLOCK_SIZE) == (100, 4)
    assert chunk_at(3 * BLOCK_SIZE) == (BLOCK_SIZE - 7, 2)
    assert chunk_at(4 * BLOCK_SIZE) == (BLOCK_SIZE - 7, 3)
    path = tmp_path / "run-x.wandb"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(iter_wandb_records(path)) == payloads


def test_framing_truncation_at_any_cut_yields_whole_records_only(tmp_path):
    rng = np.random.default_rng(1)
    payloads = [rng.bytes(n) for n in [*EDGE_SIZES, 10, 40_000, 7, 3]]
    data = frame(payloads)
    ends = [len(frame(payloads[: k + 1])) for k in range(len(payloads))]
    path = tmp_path / "run-x.wandb"
    cuts = {3, 7, 8, 20, BLOCK_SIZE - 2, BLOCK_SIZE, BLOCK_SIZE + 8, 2 * BLOCK_SIZE - 3,
            *ends, *(e - 1 for e in ends), *(e + 1 for e in ends[:-1]),
            *rng.integers(8, len(data), 40).tolist()}
    for cut in sorted(cuts):
        path.write_bytes(data[:cut])
        complete = sum(end <= cut for end in ends)
        after_last_record = data[max([7, *ends[:complete]]) : cut]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = list(iter_wandb_records(path))
        assert got == payloads[:complete], cut
        # a cut in the header or a record warns; a cut in padding or at a record end does not
        assert bool(caught) == (cut < 7 or any(after_last_record)), cut


def test_corrupt_chunk_stops_with_warning_and_bad_header_raises(tmp_path):
    data = bytearray(frame([b"alpha", b"beta", b"gamma"]))
    data[7 + 7 + 5 + 7] ^= 0xFF  # first payload byte of "beta"
    path = tmp_path / "run-x.wandb"
    path.write_bytes(bytes(data))
    with pytest.warns(TruncatedRunWarning, match="checksum mismatch"):
        assert list(iter_wandb_records(path)) == [b"alpha"]
    path.write_bytes(b"PK\x03\x04 not a run")
    with pytest.raises(ValueError, match="not a W&B run file"):
        list(iter_wandb_records(path))


def test_empty_run_file_gives_empty_frame(tmp_path):
    path = tmp_path / "run-x.wandb"
    path.write_bytes(WANDB_FILE_HEADER)
    df = read_wandb_offline(path)
    assert df.empty and df.columns.tolist() == ["_step"]
    assert json.dumps(read_wandb_offline_summary(path)) == "{}"
    with pytest.raises(TimeoutError):
        wait_for_wandb_run(path, timeout=0.1)
