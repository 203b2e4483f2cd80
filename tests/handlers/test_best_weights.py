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

import torch
from ignite.engine import Engine, Events

from monai_jepa.handlers import BestWeightsSaver


def test_best_weights_saver_keeps_the_weights_of_the_best_epoch(tmp_path):
    net = torch.nn.Linear(2, 1)
    scores = [0.2, 0.5, 0.4, 0.7, 0.6]  # best at epochs 2 and 4 (1-based)
    engine = Engine(lambda e, b: None)

    @engine.on(Events.EPOCH_COMPLETED)
    def _score(e):  # what a MONAI evaluator does before later EPOCH_COMPLETED handlers: track the best epoch
        with torch.no_grad():
            net.weight.fill_(e.state.epoch)  # the weights of epoch k are all k
        score = scores[e.state.epoch - 1]
        if score > getattr(e.state, "best_metric", -1.0):
            e.state.best_metric, e.state.best_metric_epoch = score, e.state.epoch

    path = tmp_path / "models" / "seg_model.pt"
    BestWeightsSaver(net, path).attach(engine)
    saved = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: saved.append(torch.load(path, weights_only=True)))
    engine.run([0], max_epochs=len(scores))
    assert [float(s["weight"][0, 0]) for s in saved] == [1.0, 2.0, 2.0, 4.0, 4.0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["seg_model.pt"]  # replaced in place, no temporary file
