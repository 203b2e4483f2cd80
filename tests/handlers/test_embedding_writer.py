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

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import DataLoader, decollate_batch
from monai.engines import SupervisedEvaluator

from monai_jepa.handlers import EmbeddingSaver, EmbeddingWriter
from monai_jepa.inferers import EmbeddingInferer
from monai_jepa.networks import ProbeHead

BATCHES = [
    {"image": torch.rand(2, 1, 2, 2), "id": ["a", "b"], "label": torch.tensor([0, 1])},
    {"image": torch.rand(1, 1, 2, 2), "id": ["c"], "label": torch.tensor([1])},
]


class _Flat(torch.nn.Module):
    """A stand-in encoder: ``embed`` flattens the image."""

    def embed(self, x):
        return x.flatten(1)

    def forward(self, x):
        return x.flatten(1)[:, :1]


def _run(writer, mode, batches=BATCHES):
    def step(engine, batch):
        if mode == "batched":
            return {"pred": batch["image"].flatten(1)}
        engine.state.batch = decollate_batch(batch)
        return [{"pred": item["image"].flatten()} for item in engine.state.batch]

    engine = Engine(step)
    writer.attach(engine)
    engine.run(batches, max_epochs=1)
    return engine


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_embedding_writer_batched_and_decollated(tmp_path):
    texts = []
    for mode in ("batched", "decollated"):
        writer = EmbeddingWriter(tmp_path / mode)
        _run(writer, mode)
        emb = np.load(tmp_path / mode / "embeddings.npy")
        assert emb.dtype == np.float32 and emb.shape == (3, 4)
        assert np.allclose(emb, torch.cat([b["image"].flatten(1) for b in BATCHES]).numpy())
        texts.append((tmp_path / mode / "embeddings.csv").read_text())
        assert not (tmp_path / mode / "probabilities.csv").exists()  # no probe head given
        assert sorted(p.name for p in (tmp_path / mode).iterdir()) == ["embeddings.csv", "embeddings.npy"]
        assert set(writer.files) == {"npy", "csv"}
    assert texts[0] == texts[1]
    rows = _rows(tmp_path / "batched" / "embeddings.csv")
    assert rows[0] == ["id", "label", "f0", "f1", "f2", "f3"]
    assert [r[:2] for r in rows[1:]] == [["a", "0"], ["b", "1"], ["c", "1"]]
    first = BATCHES[0]["image"][0].flatten()
    assert rows[1][2:] == [f"{v:.6g}" for v in first.tolist()]


def test_missing_ids_and_labels_are_row_numbers_and_empty(tmp_path):
    batches = [{"image": torch.rand(2, 1, 1, 3)}, {"image": torch.rand(2, 1, 1, 3)}]
    _run(EmbeddingWriter(tmp_path), "batched", batches)
    assert [r[:2] for r in _rows(tmp_path / "embeddings.csv")[1:]] == [["0", ""], ["1", ""], ["2", ""], ["3", ""]]


def test_multilabel_labels_are_space_separated(tmp_path):
    batches = [{"image": torch.rand(2, 1, 1, 2), "id": ["x", "y"], "label": torch.tensor([[0, 1], [1, 1]])}]
    _run(EmbeddingWriter(tmp_path, prefix="feats"), "decollated", batches)
    assert [r[:2] for r in _rows(tmp_path / "feats.csv")[1:]] == [["x", "0 1"], ["y", "1 1"]]
    assert np.load(tmp_path / "feats.npy").shape == (2, 2)


def test_each_epoch_rewrites_the_files(tmp_path):
    writer = EmbeddingWriter(tmp_path)
    engine = Engine(lambda e, b: {"pred": b["image"].flatten(1)})
    writer.attach(engine)
    writer.attach(engine)  # attaching twice registers the handlers once
    engine.run(BATCHES, max_epochs=2)
    assert np.load(tmp_path / "embeddings.npy").shape == (3, 4)  # the buffers restart every epoch
    assert len(_rows(tmp_path / "embeddings.csv")) == 4


def test_supervised_evaluator_with_probe_head(tmp_path):
    probe = ProbeHead(torch.zeros(4), torch.ones(4), torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.zeros(1), "binary",
                      ["neg", "pos"])  # fmt: skip
    probe_file = probe.to_file(tmp_path / "models" / "probe_head.pt")
    images = torch.rand(5, 1, 2, 2)
    data = [{"image": images[i], "label": i % 2, "id": f"case{i}"} for i in range(5)]
    writer = EmbeddingWriter(tmp_path / "out", probe_file=probe_file)
    evaluator = SupervisedEvaluator(
        "cpu", DataLoader(data, batch_size=2), _Flat(), inferer=EmbeddingInferer(), val_handlers=[writer]
    )
    evaluator.run()
    emb = np.load(tmp_path / "out" / "embeddings.npy")
    assert np.allclose(emb, images.flatten(1).numpy())
    rows = _rows(tmp_path / "out" / "probabilities.csv")
    assert rows[0] == ["id", "label", "p_pos"]
    assert [r[:2] for r in rows[1:]] == [[f"case{i}", str(i % 2)] for i in range(5)]
    expected = torch.sigmoid(images.flatten(1)[:, 0]).tolist()
    assert [float(r[2]) for r in rows[1:]] == pytest.approx(expected, rel=1e-5)
    assert set(writer.files) == {"npy", "csv", "probabilities"}


def test_multiclass_probabilities_have_one_column_per_class(tmp_path):
    probe = ProbeHead(torch.zeros(2), torch.ones(2), torch.eye(3, 2), torch.zeros(3), "multiclass", ["a", "b", "c"])
    saver = EmbeddingSaver(tmp_path, probe_file=probe.to_file(tmp_path / "probe.pt"))
    saver.save_batch(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), {"id": ["u", "v"], "label": ["0", "1"]})
    files = saver.finalize()
    rows = _rows(files["probabilities"])
    assert rows[0] == ["id", "label", "p_a", "p_b", "p_c"]
    expected = torch.softmax(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), dim=1)
    assert np.allclose(np.asarray([r[2:] for r in rows[1:]], dtype=float), expected.numpy(), atol=1e-6)


def test_saver_writes_atomically_and_keeps_previous_files_on_failure(tmp_path, monkeypatch):
    saver = EmbeddingSaver(tmp_path)
    assert saver.finalize() == {}  # nothing cached: nothing written
    assert list(tmp_path.iterdir()) == []
    saver.save_batch(torch.ones(2, 3))
    saver.finalize()
    before = (tmp_path / "embeddings.csv").read_text()
    assert [r[:2] for r in _rows(tmp_path / "embeddings.csv")[1:]] == [["0", ""], ["1", ""]]

    def broken_save(f, arr):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    saver.save_batch(torch.zeros(4, 3))
    with pytest.raises(OSError, match="disk full"):
        saver.finalize()
    monkeypatch.undo()
    assert np.array_equal(np.load(tmp_path / "embeddings.npy"), np.ones((2, 3), np.float32))
    assert (tmp_path / "embeddings.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.csv", "embeddings.npy"]  # no temporary file
