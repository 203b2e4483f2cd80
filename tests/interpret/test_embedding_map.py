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

import numpy as np
import pytest

from monai_jepa.interpret import embedding_projection, plot_embedding_map


def test_pca_recovers_the_main_axes_with_fixed_signs():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 3.0, 200), rng.normal(0, 1.0, 200)
    features = np.stack([b, a, np.zeros(200), 0.01 * rng.normal(size=200)], axis=1)
    coords, info = embedding_projection(features)
    assert coords.shape == (200, 2) and info["method"] == "pca"
    assert abs(np.corrcoef(coords[:, 0], a)[0, 1]) > 0.99 and abs(np.corrcoef(coords[:, 1], b)[0, 1]) > 0.99
    assert info["explained_variance_ratio"][0] > 0.85
    flipped, _ = embedding_projection(-features)
    np.testing.assert_allclose(np.abs(flipped), np.abs(coords))
    np.testing.assert_allclose(embedding_projection(features)[0], coords)  # deterministic


def test_bad_features_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        embedding_projection(np.array([[0.0, np.nan], [1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="N >= 3"):
        embedding_projection(np.zeros((2, 4)))


def test_umap_projection_when_installed():
    pytest.importorskip("umap")
    coords, info = embedding_projection(np.random.default_rng(0).normal(size=(30, 5)), "umap", seed=0)
    assert coords.shape == (30, 2) and np.isfinite(coords).all() and info["method"] == "umap"


def test_plot_writes_a_png_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    coords = np.random.default_rng(0).normal(size=(12, 2))
    path = plot_embedding_map(coords, ["site A"] * 6 + ["site B"] * 6, tmp_path / "map.png", title="sites")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    plot_embedding_map(coords, np.linspace(0, 1, 12) ** 2 * np.arange(12), tmp_path / "cont.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cont.png", "map.png"]
    with pytest.raises(ValueError, match="N values"):
        plot_embedding_map(coords, [0, 1], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
