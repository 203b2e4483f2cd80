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
"""Command line of monai_jepa (``python -m monai_jepa <command> --help``), built with ``fire``.

Commands: ``inspect`` (describe images and find problems), ``anonymize`` (de-identify DICOM), ``datalist`` (build a
datalist JSON from a dataset folder), ``check`` (validate a datalist, optionally keeping only the good items).
Data errors print one line, ``error: <message>``, and exit with status 2; ``inspect`` and ``check`` exit with
status 1 when they find a problem, 0 otherwise.
"""

from __future__ import annotations

import contextlib
import json as _json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["datalist", "inspect", "anonymize", "check", "COMMANDS", "main"]

EXIT_PROBLEM, EXIT_ERROR = 1, 2


def _quiet() -> None:
    """Keep the terminal for the command's own output: no third-party warnings or info logs."""
    import warnings

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    for name in ("monai", "pydicom", "nibabel", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _path(value: Any) -> str:
    """fire parses ``001`` as an int and ``a,b`` as a tuple: give back the text the user typed."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _tag_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:04d}" if isinstance(v, int) else str(v) for v in value)
    return str(value)


def datalist(
    dataset: str | None = None, root: str | None = None, out: str | None = None, list: bool = False, **kwargs: Any
) -> None:
    """Build the datalist JSON of a dataset folder.

    Usage: python -m monai_jepa datalist DATASET ROOT --out datalist.json [--OPTION VALUE ...]
           python -m monai_jepa datalist --list

    The datalist is a Decathlon-style JSON (keys "training", "validation", "test", "root", ...) that MONAI's
    load_decathlon_datalist and the bundles read. Splits are by patient.

    Args:
        dataset: the layout of ROOT: dicom_series, nifti_folder, image_csv, chestxray14, chexpert, ... (see --list).
        root: the dataset folder.
        out: where to write the JSON (default: <dataset>_datalist.json in the current folder).
        list: print the known dataset layouts and exit.
        kwargs: options of the layout's builder, e.g. --seed 0, --skip_bad, --fractions "[0.8,0.1,0.1]".
    """
    if not list and (dataset is None or root is None):
        raise ValueError("give DATASET and ROOT (python -m monai_jepa datalist DATASET ROOT --out FILE), or --list.")
    from monai_jepa.data.datalist import build_datalist, list_datalists

    if list:
        print("\n".join(list_datalists()))
        return
    out_path = Path(_path(out)) if out is not None else Path(f"{dataset}_datalist.json")
    result = build_datalist(str(dataset), _path(root), out=out_path, **kwargs)
    counts = ", ".join(f"{split} {len(result.get(split, []))}" for split in ("training", "validation", "test"))
    print(
        f"wrote {out_path}: {counts} item(s)" + (f", {len(result['skipped'])} skipped" if result.get("skipped") else "")
    )


def inspect(path: str, json: bool = False) -> None:
    """Describe an image file or folder and report problems; exit status 1 when a problem is found.

    Usage: python -m monai_jepa inspect PATH [--json]

    PATH may be a NIfTI, DICOM, PNG / JPEG or npz file, a DICOM series folder, or any folder (a PACS export:
    every DICOM series and image file below it is described). Reported per image: format, modality, shape,
    channels, spacing (mm), orientation code (e.g. RAS), stored dtype, number of files / frames, intensity range
    and percentiles. Problems: unreadable or truncated files, NaN / inf voxels, empty folders, constant images,
    irregular or duplicated slice positions, declared burned-in annotations.

    Args:
        path: the file or folder to inspect.
        json: print the report as JSON instead of text.
    """
    from monai_jepa.apps.inspect import format_report, inspect_path

    report = inspect_path(_path(path))
    print(_json.dumps(report, indent=4, default=str) if json else format_report(report))
    if report["problems"]:
        raise SystemExit(EXIT_PROBLEM)


def anonymize(
    src: str,
    dst: str,
    date_shift_days: int | str | None = None,
    keep_private_tags: Sequence[str] = (),
    allow_burned_in: bool = False,
    uid_root: str | None = None,
    salt: str | None = None,
    report_csv: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    keep_names: bool = False,
    mapping_csv: str | None = None,
) -> None:
    """De-identify a DICOM file or folder (DICOM PS3.15 basic profile) into DST; SRC is never modified.

    Usage: python -m monai_jepa anonymize SRC DST [--salt SECRET] [--date_shift_days auto] [--report_csv r.csv]

    Patient names and IDs become keyed-hash pseudonyms, UIDs are replaced consistently (studies stay linked),
    private tags are removed, dates are emptied or shifted. Files that declare burned-in annotations are refused.

    Args:
        src: a DICOM file or a folder (searched recursively). Outputs are named from the de-identified identifiers
            only: DST/<patient pseudonym>/<study UID>/<series UID>/<instance UID>.dcm.
        dst: the output file or folder (must not lie inside SRC).
        date_shift_days: shift dates by this many days, or "auto" (a per-patient offset from the salt);
            default: remove dates as the profile says.
        keep_private_tags: private tags to keep: 0013,1010 for one, '["0013,1010","0029,1010"]' for several, or with
            the private creator: '0013,"CTP",10'.
        allow_burned_in: also process files with BurnedInAnnotation = YES.
        uid_root: prefix of the new UIDs (ending with "."); default 2.25.<int> UIDs.
        salt: secret for pseudonyms, UIDs and date offsets; the same salt gives the same output. Keep it private.
        report_csv: write what was changed (tag, action, per file; never the original values) to this CSV.
        skip_bad: skip unreadable or refused files (listed in the summary) instead of stopping.
        overwrite: replace existing outputs.
        keep_names: mirror SRC's folder and file names into DST instead (they may hold names, IDs or dates).
        mapping_csv: write the SRC -> DST file mapping to this CSV (it holds the original names: keep it private).
    """
    from monai_jepa.apps.deid import anonymize as _anonymize

    if isinstance(keep_private_tags, str) or (
        isinstance(keep_private_tags, (list, tuple))
        and len(keep_private_tags) == 2
        and all(isinstance(v, int) for v in keep_private_tags)
    ):  # fire reads 0013,1010 as text but 1234,5678 as a pair of ints
        keep_private_tags = (_tag_text(keep_private_tags),)
    keep_private_tags = tuple(_tag_text(t) for t in keep_private_tags)
    summary = _anonymize(
        _path(src),
        _path(dst),
        date_shift_days=date_shift_days,
        keep_private_tags=keep_private_tags,
        allow_burned_in=allow_burned_in,
        uid_root=uid_root,
        salt=None if salt is None else str(salt),
        report_csv=None if report_csv is None else _path(report_csv),
        skip_bad=skip_bad,
        overwrite=overwrite,
        keep_names=keep_names,
        mapping_csv=None if mapping_csv is None else _path(mapping_csv),
    )
    print(f"de-identified {len(summary['written'])} file(s) into {_path(dst)}; skipped {len(summary['skipped'])}")
    for item in summary["skipped"]:
        print(f"  skipped {item['file']}: {item['reason']}")
    for warning in summary.get("warnings", []):
        print(f"  warning: {warning}")
    if summary.get("report_csv"):
        print(f"report: {summary['report_csv']} ({summary['num_changes']} change(s))")
    if summary.get("mapping_csv"):
        print(f"name mapping (holds the original names, keep it private): {summary['mapping_csv']}")


def check(
    datalist: str,
    out: str | None = None,
    skip_bad: bool = False,
    report: str | None = None,
    expected_dims: int | None = None,
    expected_channels: int | None = None,
) -> None:
    """Validate every item of a datalist JSON: files exist and decode, images and labels agree in shape and affine.

    Usage: python -m monai_jepa check DATALIST.json [--skip_bad --report skipped.csv --out clean.json]

    Exit status 0 when every item is good, 1 when items were skipped (--skip_bad), 2 at the first bad item
    otherwise (its file and the reason are printed).

    Args:
        datalist: the datalist JSON (relative paths are resolved against its "root" entry, else its folder).
        out: write the datalist of the good items here (needs --skip_bad to drop bad ones).
        skip_bad: skip bad items instead of stopping at the first one.
        report: write what was skipped and why to this .csv or .json file.
        expected_dims: required spatial dimensionality of the images (2 or 3).
        expected_channels: required channel count of each image file.
    """
    from monai_jepa.data.io import check_datalist
    from monai_jepa.utils.fileio import atomic_write_text

    logging.getLogger("monai_jepa.data.io").setLevel(logging.ERROR)  # the skipped items are listed below
    ok, skipped = check_datalist(
        _path(datalist),
        skip_bad=skip_bad,
        report=None if report is None else _path(report),
        expected_dims=expected_dims,
        expected_channels=expected_channels,
    )
    splits = [k for k, v in ok.items() if isinstance(v, list) and k != "skipped"] if isinstance(ok, dict) else None
    n_ok = sum(len(ok[k]) for k in splits) if splits is not None else len(ok)
    print(f"{n_ok} good item(s), {len(skipped)} skipped" + (f"; report: {_path(report)}" if report else ""))
    for row in skipped:
        print(f"  skipped {row['split'] or ''}[{row['index']}] {row['error']}: {row['message']}")
    if out is not None:
        out_path = Path(_path(out))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_path, _json.dumps(ok, indent=4, default=str) + "\n")
        print(f"wrote {out_path}")
    if skipped:
        raise SystemExit(EXIT_PROBLEM)


def embedding_map(
    embeddings: str,
    out: str | None = None,
    colour_by: str = "label",
    colours: str | None = None,
    method: str = "pca",
    seed: int = 0,
) -> None:
    """Draw a PCA / UMAP map of the embeddings written by a bundle's embed / inference run, coloured by a column.

    Usage: python -m monai_jepa embedding_map outputs/embeddings/embeddings.csv [--colour_by site --colours sites.csv]

    Args:
        embeddings: the embeddings.csv (id, label, f0, f1, ...).
        out: the PNG to write (default: embedding_map_<method>.png beside the CSV).
        colour_by: the column giving the colours: one of the CSV (label) or of --colours (e.g. site, scanner).
        colours: optional CSV with columns id and the --colour_by column.
        method: pca, or umap (needs pip install 'monai_jepa[interpret]').
        seed: UMAP random state.
    """
    from monai_jepa.interpret import embedding_map_from_csv

    path = Path(_path(embeddings))
    target = Path(_path(out)) if out is not None else path.with_name(f"embedding_map_{method}.png")
    info = embedding_map_from_csv(path, target, str(colour_by), None if colours is None else _path(colours),
                                  str(method), int(seed))  # fmt: skip
    print(f"wrote {info['png']} ({info['num_points']} points, {info['method']})")


def release_weights(
    checkpoint: str,
    bundle: str,
    drop_prefixes: str = "",
    dtype: str = "float16",
    max_mb: float = 25.0,
    url: str = "",
    data: str = "",
    command: str = "",
    budget: str = "",
) -> None:
    """Write a bundle's models/model.pt from a training checkpoint, with large_files.yml and its SHA-256 in metadata.

    Usage: python -m monai_jepa release_weights outputs/models/model.pt bundles/cxr_lejepa --drop_prefixes projector.

    Args:
        checkpoint: the training checkpoint (read with weights_only=True).
        bundle: the bundle folder.
        drop_prefixes: comma-separated entry-name prefixes left out (training-only parts, e.g. projector.).
        dtype: float16, bfloat16 or float32 for the floating-point tensors.
        max_mb: refuse (write nothing) when the file would be larger.
        url: download address written in large_files.yml (empty while the file is kept in the bundle).
        data, command, budget: what produced the checkpoint, recorded in metadata.json.
    """
    from monai_jepa.utils.release import release_weights as release

    prefixes = [p for p in _path(drop_prefixes).split(",") if p]
    record = release(_path(checkpoint), _path(bundle), prefixes, str(dtype), float(max_mb), url=str(url),
                     data=str(data), command=str(command), budget=str(budget))  # fmt: skip
    print(f"wrote {Path(_path(bundle)) / record['path']} ({record['size_bytes'] / 1e6:.1f} MB, {record['dtype']}, "
          f"sha256 {record['sha256']}), large_files.yml and metadata.json")  # fmt: skip


COMMANDS = {
    "inspect": inspect,
    "anonymize": anonymize,
    "datalist": datalist,
    "check": check,
    "embedding_map": embedding_map,
    "release_weights": release_weights,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Args:
        argv: the arguments after the program name, e.g. ``["inspect", "scan.nii.gz", "--json"]``.

    Returns:
        0 on success, 1 when ``inspect`` / ``check`` found a problem, 2 on an error (one line on stderr).
    """
    try:
        import fire
    except ImportError:  # an optional dependency (monai_jepa.utils.module would import torch: keep --help fast)
        print("error: the monai_jepa command line needs fire: pip install 'monai_jepa[cli]'", file=sys.stderr)
        return EXIT_ERROR

    _quiet()
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    for flag in ("--help", "-h"):  # fire would pass --help to a command taking **kwargs (datalist) as an option
        if flag in argv and "--" not in argv:
            argv = [a for a in argv if a != flag] + ["--", "--help"]
    help_out = contextlib.redirect_stderr(sys.stdout) if argv[-2:] == ["--", "--help"] else contextlib.nullcontext()
    try:
        with help_out:  # fire writes help to stderr: make it pipeable like any other help text
            fire.Fire(COMMANDS, command=argv, name="monai_jepa")
    except fire.core.FireExit as e:  # fire's own usage errors and --help
        return int(e.code or 0)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_ERROR
    except (ValueError, OSError, ImportError) as e:  # data errors (DataError is a ValueError), bad options, extras
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    return 0
