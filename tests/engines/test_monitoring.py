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

import io
import logging

import pytest
import torch
from ignite.engine import Events
from monai.handlers import StatsHandler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from monai_jepa.engines import OUTPUT_KEYS, JEPAProgressBar, LeJEPATrainer, attach_tensorboard, jepa_scalars
from monai_jepa.losses import LeJEPALoss


def _trainer(n_batches: int = 3, handlers=None) -> LeJEPATrainer:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    data = [{"image_global": torch.randn(2, 8, 1, 4, 4)} for _ in range(n_batches)]
    return LeJEPATrainer(
        "cpu",
        1,
        data,
        net,
        torch.optim.SGD(net.parameters(), lr=0.1),
        LeJEPALoss(num_slices=8),
        train_handlers=handlers,
        health_interval=1,
    )


def test_jepa_scalars_selects_the_documented_keys():
    out = {"loss": torch.tensor(1.5), "pred": 2, "extra": "x", "lr": 0.1}
    assert jepa_scalars(out) == {"loss": 1.5, "pred": 2.0, "lr": 0.1}
    assert jepa_scalars(None) == {}


@pytest.mark.parametrize("prefix", ["", "train/"])
def test_tensorboard_event_file_holds_all_scalars(tmp_path, prefix):
    trainer = _trainer()
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    handler = attach_tensorboard(trainer, tmp_path, tag_prefix=prefix)
    trainer.run()
    handler.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {prefix + k for k in OUTPUT_KEYS}
    for key in OUTPUT_KEYS:
        events = acc.Scalars(prefix + key)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([o[key] for o in outputs], rel=1e-6)


def test_progress_bar_shows_the_loss():
    stream = io.StringIO()
    trainer = _trainer(handlers=[JEPAProgressBar(keys=("loss", "sigreg"), file=stream, persist=True)])
    trainer.run()
    text = stream.getvalue()
    assert "loss=" in text and "sigreg=" in text and "pred=" not in text and "[3/3]" in text


def test_stats_handler_with_jepa_scalars():
    handler = StatsHandler(output_transform=jepa_scalars, name="monai_jepa.test_stats", tag_name="train")
    stream = io.StringIO()
    handler.logger.addHandler(logging.StreamHandler(stream))
    handler.logger.setLevel(logging.INFO)
    _trainer(n_batches=1, handlers=[handler]).run()
    assert all(f"{k}: " in stream.getvalue() for k in OUTPUT_KEYS)


def test_progress_without_a_terminal_logs_lines_with_the_eta(caplog):
    bar = JEPAProgressBar(keys=("loss",), tty=False, log_every=2)
    trainer = _trainer(handlers=[bar])
    with caplog.at_level(logging.INFO, logger="monai_jepa.progress"):
        trainer.run()
    lines = [r.getMessage() for r in caplog.records if r.name == "monai_jepa.progress"]
    assert bar.bar is None and len(lines) == 2  # iteration 2 and the end (iteration 3)
    assert lines[0].startswith("iteration 2/3 (67%), epoch 1/1, elapsed ") and ", ETA " in lines[0]
    assert lines[1].startswith("iteration 3/3 (100%)") and "ETA 0:00:00" in lines[1] and "loss=" in lines[1]
    with pytest.raises(ValueError, match="log_every"):
        JEPAProgressBar(log_every=0)
