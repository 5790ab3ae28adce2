"""Tests of the weights importer and our weights file: the published checkpoint reproduces the
recorded TensorFlow forward pass; bad checkpoints and weights files are refused clearly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from baselines.crefdenoiser.checkpoint import (
    load_weights,
    read_weights_file,
    save_weights,
    tf_state_dict,
    weights_digest,
)
from baselines.crefdenoiser.errors import CheckpointError
from baselines.crefdenoiser.network import CrefUNet
from baselines.crefdenoiser.sstable import crc32c, read_table
from baselines.crefdenoiser.tf_bundle import TensorBundle, parse_entry
from cref_bench.cli import main as cli_main
from tests.reference import reference_dir

REFERENCE = reference_dir("crefdenoiser")
INDEX = REFERENCE / "saved-model-epoch-192.index"
DATA = REFERENCE / "saved-model-epoch-192.data-00000-of-00001"
FORWARD = REFERENCE / "forward_64.npz"

needs_reference = pytest.mark.skipif(
    not (INDEX.is_file() and DATA.is_file() and FORWARD.is_file()),
    reason=f"reference crefDenoiser checkpoint and forward pass not found in {REFERENCE}")


@pytest.fixture(scope="module")
def published():
    return load_weights(INDEX)


@pytest.fixture()
def checkpoint_copy(tmp_path):
    """A copy of the published checkpoint in tmp_path, free to damage."""
    index = tmp_path / INDEX.name
    shutil.copyfile(INDEX, index)
    shutil.copyfile(DATA, tmp_path / DATA.name)
    return index, tmp_path / DATA.name


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _forward(model, array: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(array)[None, None])[0, 0].numpy()


def test_crc32c_known_answer():
    # The standard check value of CRC-32C.
    assert crc32c(b"123456789") == 0xE3069283


def test_parse_bundle_entry_known_answer():
    # dtype 1 (float32); shape {dim {size 3} dim {size 4}}; offset 7; size 48; crc32c.
    shape = bytes([0x12, 2, 0x08, 3, 0x12, 2, 0x08, 4])
    message = (bytes([0x08, 1, 0x12, len(shape)]) + shape + bytes([0x20, 7, 0x28, 48, 0x35])
               + (0x12345678).to_bytes(4, "little"))
    entry = parse_entry(message)
    assert (entry.dtype, entry.shape, entry.offset, entry.size, entry.crc32c) == (
        1, (3, 4), 7, 48, 0x12345678)
    with pytest.raises(ValueError, match="wire type"):
        parse_entry(bytes([0x30, 5]))  # crc32c written as a varint


@needs_reference
def test_checkpoint_index_lists_the_18_convolutions():
    bundle = TensorBundle(INDEX)
    variables = [k for k in bundle.keys() if k.startswith("layer_with_weights-")]
    assert len(variables) == 36
    kernel = bundle.entries["layer_with_weights-15/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    assert kernel.shape == (3, 3, 3, 33, 16)
    assert sum(int(np.prod(bundle.entries[k].shape)) for k in variables) == 322_881
    # The object graph is a string tensor, refused by the numeric reader.
    with pytest.raises(CheckpointError, match="string tensor"):
        bundle.read("_CHECKPOINTABLE_OBJECT_GRAPH")


@needs_reference
def test_kernels_transposed_to_torch_order():
    bundle = TensorBundle(INDEX)
    state = tf_state_dict(INDEX)
    kernel = bundle.read("layer_with_weights-9/kernel/.ATTRIBUTES/VARIABLE_VALUE")  # (3,3,3,48,32)
    weight = state["decoder.2.weight"].numpy()  # (32, 48, 3, 3, 3)
    assert weight.shape == (32, 48, 3, 3, 3)
    assert weight[5, 40, 0, 1, 2] == kernel[0, 1, 2, 40, 5]
    np.testing.assert_array_equal(weight, kernel.transpose(4, 3, 0, 1, 2))
    np.testing.assert_array_equal(state["output.bias"].numpy(),
                                  bundle.read("layer_with_weights-17/bias/.ATTRIBUTES/VARIABLE_VALUE"))


@needs_reference
def test_imported_network_reproduces_recorded_forward_pass(published):
    recorded = np.load(FORWARD)
    got = _forward(published, recorded["input"])
    assert got.shape == recorded["output"].shape
    assert _relative_error(got, recorded["output"]) < 1e-4
    assert np.abs(got - recorded["output"]).max() < 1e-4 * np.abs(recorded["output"]).max()


@needs_reference
def test_spatial_axis_order_matters(published):
    """Reading kernels with D and W swapped does not reproduce the recording, so the test
    above pins the axis order down."""
    recorded = np.load(FORWARD)
    swapped = CrefUNet().eval()
    swapped.load_state_dict({k: v.transpose(2, 4) if v.dim() == 5 else v
                             for k, v in published.state_dict().items()})
    assert _relative_error(_forward(swapped, recorded["input"]), recorded["output"]) > 1e-2


@needs_reference
def test_cli_import_writes_loadable_weights(tmp_path, capsys):
    out = tmp_path / "crefdenoiser.pt"
    assert cli_main(["import-weights", str(INDEX), "--out", str(out)]) == 0
    assert "322,881 parameters" in capsys.readouterr().out
    state, metadata = read_weights_file(out)
    reference = tf_state_dict(INDEX)
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in state)
    assert metadata["source_sha256_prefix"] == weights_digest(INDEX)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left
    assert weights_digest(out) != weights_digest(INDEX)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(4)
    model = CrefUNet()
    path = save_weights(model, tmp_path / "w.pt", metadata={"epoch": 3})
    loaded = load_weights(path)
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 loaded.state_dict().values()))
    assert read_weights_file(path)[1] == {"epoch": 3}
    assert len(weights_digest(path)) == 12


@needs_reference
def test_missing_data_file(checkpoint_copy, capsys):
    index, data = checkpoint_copy
    data.unlink()
    with pytest.raises(CheckpointError, match="data file missing") as err:
        load_weights(index)
    assert err.value.source == str(data)
    assert cli_main(["import-weights", str(index), "--out", str(index.parent / "w.pt")]) == 2
    assert str(data) in capsys.readouterr().err
    assert not (index.parent / "w.pt").exists()


@needs_reference
def test_truncated_data_file(checkpoint_copy):
    index, data = checkpoint_copy
    content = data.read_bytes()
    data.write_bytes(content[:len(content) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        tf_state_dict(index)
    assert err.value.source == str(data)


@needs_reference
def test_corrupt_data_file(checkpoint_copy):
    index, data = checkpoint_copy
    content = bytearray(data.read_bytes())
    content[1000:1010] = bytes(10)
    data.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="checksum mismatch") as err:
        tf_state_dict(index)
    assert err.value.source == str(data)


@needs_reference
def test_truncated_index(checkpoint_copy):
    index, _ = checkpoint_copy
    index.write_bytes(index.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="magic number") as err:
        tf_state_dict(index)
    assert err.value.source == str(index)


@needs_reference
def test_corrupt_index_block(checkpoint_copy):
    index, _ = checkpoint_copy
    content = bytearray(index.read_bytes())
    content[100] ^= 0xFF
    index.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="checksum mismatch") as err:
        read_table(index)
    assert err.value.source == str(index)


@needs_reference
def test_data_file_given_instead_of_index():
    with pytest.raises(CheckpointError, match="give the checkpoint's .index") as err:
        tf_state_dict(DATA)
    assert err.value.source == str(DATA)


def test_wrong_files_refused(tmp_path):
    text = tmp_path / "notes.index"
    text.write_text("not a checkpoint, but long enough to hold a footer of forty-eight bytes\n")
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint index") as err:
        load_weights(text)
    assert err.value.source == str(text)
    short = tmp_path / "short.index"
    short.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="shorter than a table footer"):
        tf_state_dict(short)
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not a torch file")
    with pytest.raises(CheckpointError, match="not a readable torch weights file"):
        load_weights(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a cref-bench-weights file"):
        load_weights(other)
