# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import csv
import os
import pickle
import stat

import pytest
import torch

from monai_jepa.engines import atomic_torch_save as engines_atomic_torch_save
from monai_jepa.utils import atomic_torch_save, atomic_write, atomic_write_bytes, atomic_write_text
from monai_jepa.utils.fileio import output_name


def test_failing_write_keeps_previous_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"previous")

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]

    # a new file that fails is not created at all
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "new.bin", failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_failing_torch_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.ones(2)}, path)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        atomic_torch_save({"f": lambda x: x}, path)  # a lambda cannot be pickled
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_text_and_bytes_round_trip(tmp_path):
    text = "ünïcode ✓\r\nsecond line\n"
    out = atomic_write_text(tmp_path / "a.txt", text)
    assert out == tmp_path / "a.txt"
    assert out.read_bytes() == text.encode("utf-8")  # no newline translation
    assert atomic_write_text(out, "replaced").read_text(encoding="utf-8") == "replaced"
    assert atomic_write_text(tmp_path / "l.txt", "é", encoding="latin-1").read_bytes() == b"\xe9"
    data = bytes(range(256))
    assert atomic_write_bytes(str(tmp_path / "b.bin"), data).read_bytes() == data


def test_text_mode_and_permissions(tmp_path):
    path = tmp_path / "t.csv"
    atomic_write(path, lambda f: csv.writer(f).writerows([("a", "ü"), ("b", "2")]), text=True, permissions=0o640)
    assert path.read_bytes() == "a,ü\r\nb,2\r\n".encode()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_torch_round_trip_and_engines_reexport(tmp_path):
    assert engines_atomic_torch_save is atomic_torch_save
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 7, "name": "x"}
    path = atomic_torch_save(state, tmp_path / "ckpt.pt")
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7 and loaded["name"] == "x"


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "x.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_load_checkpoint_file_names_the_file_and_the_reason(tmp_path):
    from monai_jepa.utils.fileio import CheckpointReadError, load_checkpoint_file

    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_checkpoint_file(good)["w"], torch.ones(2))
    with pytest.raises(FileNotFoundError, match="pretrained checkpoint '.*missing.pt' does not exist"):
        load_checkpoint_file(tmp_path / "missing.pt", "pretrained checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointReadError, match=r"'.*empty.pt' is empty \(0 bytes\)"):
        load_checkpoint_file(tmp_path / "empty.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointReadError, match=r"'.*cut.pt' could not be read .*\(40 bytes: .*\): \w+"):
        load_checkpoint_file(tmp_path / "cut.pt")
    assert issubclass(CheckpointReadError, RuntimeError) and issubclass(CheckpointReadError, ValueError)


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".", "..", "a\0b"])
def test_output_name_refuses_paths(name):
    with pytest.raises(ValueError, match="plain file name"):
        output_name({"id": name}, "id", "Writer")


def test_output_name_requires_the_case_id():
    assert output_name({"id": "case_01", "image": "/data/Doe^John.nii.gz"}, "id", "Writer") == "case_01"
    assert output_name({"case": 7}, "case", "Writer") == "7"
    for item in ({}, {"id": ""}, {"id": "  "}, {"id": None}):
        with pytest.raises(KeyError, match="Writer needs an output name in the item's 'id' key"):
            output_name(item, "id", "Writer")
