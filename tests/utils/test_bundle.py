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

import json
import sys
from pathlib import Path

from monai.bundle import ConfigParser, ConfigWorkflow

from monai_jepa.utils import bundle_root_from_config
from monai_jepa.utils.bundle import _config_file_from_argv

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cxr_lejepa"


def test_config_file_from_argv():
    assert _config_file_from_argv(["x", "--config_file", "['a/configs/t.json','b.json']"]) == "a/configs/t.json"
    assert _config_file_from_argv(["x", "--config_file", "[a/configs/u.json,b.json]"]) == "a/configs/u.json"
    assert _config_file_from_argv(["x", "--config_file=c/configs/t.json"]) == "c/configs/t.json"
    assert _config_file_from_argv(["x", "--meta_file", "m.json"]) is None
    assert _config_file_from_argv(["x", "--config_file"]) is None


def test_bundle_root_from_argv_default_and_cwd(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--config_file", str(BUNDLE / "configs" / "inference.json")])
    assert Path(bundle_root_from_config()) == BUNDLE
    monkeypatch.setattr(sys, "argv", ["prog", "--config_file", str(tmp_path / "flat.json")])
    assert Path(bundle_root_from_config()) == tmp_path.resolve()  # a folder not named configs is the root itself
    monkeypatch.setattr(sys, "argv", ["prog"])
    assert Path(bundle_root_from_config(default=tmp_path)) == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    assert Path(bundle_root_from_config()) == tmp_path.resolve()


def test_bundle_root_of_a_config_workflow(tmp_path, monkeypatch):
    configs = tmp_path / "my_bundle" / "configs"
    configs.mkdir(parents=True)
    config = {
        "imports": ["$import monai_jepa", "$import monai_jepa.utils"],
        "bundle_root": "$monai_jepa.utils.bundle_root_from_config()",
    }
    (configs / "train.json").write_text(json.dumps(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # `python -m monai.bundle run ... --config_file ../my_bundle/configs/train.json`, from anywhere
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "--config_file", "../my_bundle/configs/train.json"])
    wf = ConfigWorkflow(config_file="../my_bundle/configs/train.json", workflow_type="infer", logging_file=False)
    wf.initialize()
    assert Path(wf.bundle_root) == (tmp_path / "my_bundle").resolve()  # property read by the workflow
    # from Python the caller names the bundle (MONAI Label does); without it, the current directory, as "." would
    monkeypatch.setattr(sys, "argv", ["prog"])
    wf = ConfigWorkflow(
        config_file=str(configs / "train.json"), workflow_type="infer", logging_file=False, bundle_root=str(tmp_path)
    )
    wf.initialize()
    assert Path(wf.bundle_root) == tmp_path
    parser = ConfigParser()
    parser.read_config(str(configs / "train.json"))
    assert Path(parser.get_parsed_content("bundle_root")) == elsewhere.resolve()
