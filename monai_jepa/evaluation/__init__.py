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
"""Downstream evaluation: frozen features, linear / kNN probes, few-shot and label-fraction protocols, fine-tuning
against from-scratch and random-init baselines, metrics, reports and plots."""

from .clip_values import clip_area_ef, clip_values
from .domain_shift import (
    DEFAULT_SHIFT_STRENGTHS,
    SHIFT_MAXIMA,
    SHIFT_TYPES,
    apply_shift,
    cross_site_sweep,
    format_cross_site_report,
    format_shift_report,
    plot_cross_site,
    plot_shift_curves,
    scanner_shift_curve,
    shift_parameter,
    write_shift_report,
)
from .features import (
    as_data_loader,
    autocast_context,
    data_labels,
    data_length,
    embed_batch,
    extract_features,
    split_batch,
    subset_data,
)
from .finetune import ClassifierHead, EncoderClassifier, fine_tune, load_network_state, predict_scores
from .metrics import TASKS, classification_metrics, labels_to_numpy, num_outputs_for_task
from .probe_head import fit_probe_head
from .probes import DEFAULT_C_GRID, infer_num_classes, knn_probe, linear_probe, standardize
from .protocols import (
    DEFAULT_LABEL_FRACTIONS,
    DEFAULT_SHOTS,
    METRIC_KEYS,
    PROBES,
    few_shot,
    label_fraction_sweep,
    stratified_subset,
    summarize_runs,
)
from .regression import (
    DEFAULT_ALPHA_GRID,
    evaluate_regression,
    regression_fraction_sweep,
    regression_metrics,
    ridge_probe,
)
from .report import format_report, json_safe, plot_label_efficiency, run_provenance, write_report
from .segmentation import (
    evaluate_segmentation,
    fine_tune_segmentation,
    segmentation_augmentation,
    segmentation_label_sweep,
)
from .suite import DEFAULT_PROTOCOLS, EvaluationSuite, load_checkpoint_state, reinit_factory

__all__ = [
    "clip_area_ef",
    "clip_values",
    "DEFAULT_ALPHA_GRID",
    "evaluate_regression",
    "regression_fraction_sweep",
    "regression_metrics",
    "ridge_probe",
    "ClassifierHead",
    "DEFAULT_C_GRID",
    "DEFAULT_LABEL_FRACTIONS",
    "DEFAULT_PROTOCOLS",
    "DEFAULT_SHIFT_STRENGTHS",
    "DEFAULT_SHOTS",
    "EncoderClassifier",
    "EvaluationSuite",
    "METRIC_KEYS",
    "PROBES",
    "SHIFT_MAXIMA",
    "SHIFT_TYPES",
    "TASKS",
    "apply_shift",
    "as_data_loader",
    "autocast_context",
    "classification_metrics",
    "cross_site_sweep",
    "format_cross_site_report",
    "plot_cross_site",
    "data_labels",
    "data_length",
    "embed_batch",
    "evaluate_segmentation",
    "extract_features",
    "few_shot",
    "fine_tune",
    "fine_tune_segmentation",
    "fit_probe_head",
    "format_report",
    "format_shift_report",
    "infer_num_classes",
    "json_safe",
    "knn_probe",
    "label_fraction_sweep",
    "labels_to_numpy",
    "linear_probe",
    "load_checkpoint_state",
    "load_network_state",
    "num_outputs_for_task",
    "plot_label_efficiency",
    "plot_shift_curves",
    "predict_scores",
    "reinit_factory",
    "run_provenance",
    "scanner_shift_curve",
    "segmentation_augmentation",
    "segmentation_label_sweep",
    "shift_parameter",
    "split_batch",
    "standardize",
    "stratified_subset",
    "subset_data",
    "summarize_runs",
    "write_report",
    "write_shift_report",
]
