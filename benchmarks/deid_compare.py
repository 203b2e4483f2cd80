# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""What three DICOM de-identification tools keep, remove and replace, measured on the shared DICOM data.

Tools, each run with its documented defaults on copies of the input in a temporary folder:

* ``monai_jepa``: ``monai_jepa.apps.deid.anonymize`` (the ``python -m monai_jepa anonymize`` command) with a salt,
  and once more with ``date_shift_days="auto"``;
* ``deid`` (pydicom's deid): ``deid.dicom.replace_identifiers`` with its default recipe (``deid.dicom``), once with its
  default ``remove_private=False`` and once with ``remove_private=True``. It writes ``output_folder/<basename>``, so
  the script passes one output folder per input folder to keep the tree;
* ``dicognito``: its command line, ``python -m dicognito --output-directory OUT --seed SEED SRC`` (outputs are named
  by their new SOP Instance UID; the seed lets the script pair each output with its input).

For every input file and every attribute of a group (patient name, ID, birth date, study / series dates and times,
instance and referenced UIDs, institution, physician and operator names, private tags, the burned-in annotation flag,
the file meta identifiers, the 128-byte preamble, the file and folder names) the non-empty input value is classified
as ``kept`` (same value), ``replaced`` (another non-empty value), ``emptied`` (present, empty) or ``removed``
(absent), and the counts are summed over the files. A second part checks each output: readable, still a DICOM
instance (SOP Class and SOP Instance UID), pixels unchanged, one output series per input series; and how each tool
treats a copy of ``CT_small.dcm`` that declares ``BurnedInAnnotation YES``.

    python -m benchmarks.deid_compare [--data ../shared/data] [--sets dicom_samples tcia_brain_tumor_progression]

Needs ``pip install deid dicognito`` (the ``deid-compare`` extra); writes ``results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from benchmarks._common import write_results

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_SETS = ("dicom_samples", "tcia_brain_tumor_progression")
SALT = "deid-compare"
SEED = "deid-compare"
OUTCOMES = ("kept", "replaced", "emptied", "removed")

#: Attribute groups measured by keyword, at the top level of the dataset (file meta: in ``ds.file_meta``).
GROUPS: dict[str, tuple[str, ...]] = {
    "patient name": ("PatientName",),
    "patient ID": ("PatientID",),
    "patient birth date": ("PatientBirthDate",),
    "study / series / acquisition / content dates": ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"),
    "study / series / acquisition / content times": ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"),
    "accession number, study ID": ("AccessionNumber", "StudyID"),
    "study / series / SOP instance / frame of reference UIDs": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "FrameOfReferenceUID",
    ),
    "institution name / address / department": ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"),
    "physician / operator names": (
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "RequestingPhysician",
    ),
    "station name, device serial number": ("StationName", "DeviceSerialNumber"),
    "burned-in annotation flag": ("BurnedInAnnotation",),
}
META_GROUP = "file meta: media storage SOP instance UID, source AE title"
META_KEYWORDS = ("MediaStorageSOPInstanceUID", "SourceApplicationEntityTitle")
NESTED_UIDS = "referenced instance / frame of reference UIDs in sequences"
PRIVATE = "private tags (any depth)"
PREAMBLE = "preamble bytes (non-zero preambles)"
NAMES = "file / folder names"
ROW_ORDER = (
    list(GROUPS)[:7] + [NESTED_UIDS, META_GROUP] + list(GROUPS)[7:10] + [PRIVATE, list(GROUPS)[10], PREAMBLE, NAMES]
)


# ---------------------------------------------------------------------------------------------------------- tools
def run_monai_jepa(src: Path, out: Path, date_shift: bool = False) -> dict[str, Path | None]:
    """De-identify ``src`` into ``out`` with ``monai_jepa.apps.deid.anonymize``; map each input to its output."""
    from monai_jepa.apps.deid import anonymize

    logging.getLogger("monai_jepa").setLevel(logging.ERROR)
    shift = "auto" if date_shift else None
    summary = anonymize(src, out, salt=SALT, date_shift_days=shift, skip_bad=True)
    written = {Path(p).relative_to(out).as_posix() for p in summary["written"]}
    return {rel: (out / rel if rel in written else None) for rel in _inputs(src)}


def run_deid(src: Path, out: Path, remove_private: bool = False) -> dict[str, Path | None]:
    """De-identify with deid's default recipe, one output folder per input folder."""
    from deid.dicom import replace_identifiers
    from deid.logger import bot

    bot.level = -3  # deid's logger: errors only (it warns on every call that the default recipe is used)
    result: dict[str, Path | None] = {}
    for rel in _inputs(src):
        target = out / Path(rel).parent
        target.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                files = replace_identifiers(
                    [str(src / rel)], save=True, output_folder=str(target), remove_private=remove_private
                )
            result[rel] = Path(files[0]) if files and Path(files[0]).is_file() else None
        except Exception:  # a tool failure is a measured outcome
            result[rel] = None
    return result


def run_dicognito(src: Path, out: Path) -> dict[str, Path | None]:
    """De-identify with dicognito's command line; pair outputs with inputs through the seeded new SOP Instance UID."""
    from dicognito.anonymizer import Anonymizer

    cmd = [sys.executable, "-m", "dicognito", "--output-directory", str(out), "--seed", SEED, "--quiet", str(src)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Path | None] = {}
    for rel in _inputs(src):
        ds = pydicom.dcmread(src / rel)
        Anonymizer(seed=SEED).anonymize(ds)  # the same seed gives the CLI's new UID
        path = out / f"{ds.SOPInstanceUID}.dcm"
        result[rel] = path if path.is_file() else None
    return result


TOOLS: dict[str, tuple[str, Callable[[Path, Path], dict[str, Path | None]]]] = {
    "monai_jepa": ("monai_jepa (salt)", run_monai_jepa),
    "monai_jepa_shift": ("monai_jepa (salt, dates shifted)", lambda s, o: run_monai_jepa(s, o, date_shift=True)),
    "deid": ("deid (default recipe)", run_deid),
    "deid_private": ("deid (default recipe, remove_private)", lambda s, o: run_deid(s, o, remove_private=True)),
    "dicognito": ("dicognito (CLI defaults)", run_dicognito),
}


# ---------------------------------------------------------------------------------------------------- measurement
def resolve_collisions(mapping: dict[str, Path | None], originals: dict[str, Dataset]) -> dict[str, Path | None]:
    """Inputs whose outputs landed on the same path: keep the one the surviving file holds, the others were lost."""
    by_path: dict[Path, list[str]] = defaultdict(list)
    for rel, path in mapping.items():
        if path is not None:
            by_path[path].append(rel)
    result = dict(mapping)
    for path, rels in by_path.items():
        if len(rels) > 1:
            survivor = pydicom.dcmread(path)
            holder = next((r for r in rels if originals[r].get("PixelData") == survivor.get("PixelData")), rels[-1])
            for rel in rels:
                result[rel] = path if rel == holder else None
    return result


def _inputs(src: Path) -> list[str]:
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*.dcm") if p.is_file())


def _outcome(before: object, after_present: bool, after: object) -> str:
    if not after_present:
        return "removed"
    if after is None or after == "" or after == b"" or (isinstance(after, (list, tuple)) and not after):
        return "emptied"
    return "kept" if str(after) == str(before) else "replaced"


def _walk(ds: Dataset, path: tuple = ()) -> Iterator[tuple[tuple, pydicom.DataElement]]:
    for elem in ds:
        yield path, elem
        if elem.VR == "SQ" and elem.value:
            for index, item in enumerate(elem.value):
                yield from _walk(item, path + ((int(elem.tag), index),))


def _find(ds: Dataset, path: tuple, tag: int) -> pydicom.DataElement | None:
    for seq_tag, index in path:
        if seq_tag not in ds or not ds[seq_tag].value or len(ds[seq_tag].value) <= index:
            return None
        ds = ds[seq_tag].value[index]
    return ds[tag] if tag in ds else None


def _empty(elem: pydicom.DataElement) -> bool:
    return elem.VR != "SQ" and (elem.value is None or elem.value == "" or elem.value == b"")


def measure_file(orig: Dataset, anon: Dataset | None, rel_in: str, rel_out: str | None) -> dict[str, Counter]:
    """Outcome counts of every group for one input file and its output (``None``: no output)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for group, keywords in GROUPS.items():
        for keyword in keywords:
            if keyword in orig and not _empty(orig[keyword]):
                present = anon is not None and keyword in anon
                outcome = _outcome(orig[keyword].value, present, anon[keyword].value if present else None)
                counts[group][outcome] += 1
                counts[f"keyword:{keyword}"][outcome] += 1
    meta_in = getattr(orig, "file_meta", None) or Dataset()
    meta_out = (getattr(anon, "file_meta", None) or Dataset()) if anon is not None else Dataset()
    for keyword in META_KEYWORDS:
        if keyword in meta_in and not _empty(meta_in[keyword]):
            present = anon is not None and keyword in meta_out
            value = meta_out[keyword].value if present else None
            outcome = _outcome(meta_in[keyword].value, present, value)
            counts[META_GROUP][outcome] += 1
            counts[f"keyword:{keyword}"][outcome] += 1
    for path, elem in _walk(orig):
        if _empty(elem):
            continue
        nested_uid = bool(path) and elem.VR == "UI" and elem.keyword.endswith(("InstanceUID", "FrameOfReferenceUID"))
        if elem.tag.is_private or nested_uid:
            new = _find(anon, path, int(elem.tag)) if anon is not None else None
            group = PRIVATE if elem.tag.is_private else NESTED_UIDS
            if elem.VR == "SQ":
                counts[group]["kept" if new is not None else "removed"] += 1
            else:
                counts[group][_outcome(elem.value, new is not None, None if new is None else new.value)] += 1
    preamble = orig.preamble or b""
    if preamble.strip(b"\x00"):
        after = (anon.preamble or b"") if anon is not None else None
        if after is None:
            counts[PREAMBLE]["removed"] += 1
        else:
            counts[PREAMBLE][
                "kept" if after == preamble else "emptied" if not after.strip(b"\x00") else "replaced"
            ] += 1
    counts[NAMES]["removed" if rel_out is None else "kept" if rel_out == rel_in else "replaced"] += 1
    return counts


def check_outputs(pairs: dict[str, tuple[Dataset, Dataset | None]]) -> dict[str, int]:
    """Files written, valid DICOM instances, unchanged pixels, de-identification flag, series linkage."""
    written = [(o, a) for o, a in pairs.values() if a is not None]
    series: dict[str, set] = defaultdict(set)
    studies_in, studies_out = set(), set()
    for o, a in written:
        series[str(o.get("SeriesInstanceUID"))].add(str(a.get("SeriesInstanceUID", "")))
        studies_in.add(str(o.get("StudyInstanceUID")))
        studies_out.add(str(a.get("StudyInstanceUID", "")))
    owners = Counter(uid for uids in series.values() for uid in uids)  # how many input series share an output UID
    return {
        "files": len(pairs),
        "written": len(written),
        "valid_instance": sum(
            bool(str(a.get("SOPClassUID", "")).strip() and str(a.get("SOPInstanceUID", "")).strip()) for _, a in written
        ),
        "pixels_unchanged": sum(("PixelData" in a and a.PixelData == o.PixelData) for o, a in written),
        "patient_identity_removed": sum(str(a.get("PatientIdentityRemoved", "")) == "YES" for _, a in written),
        "patient_identity_removed_in": sum(str(o.get("PatientIdentityRemoved", "")) == "YES" for o, _ in written),
        "series_in": len(series),
        "series_linked": sum(
            len(uids) == 1 and "" not in uids and owners[next(iter(uids))] == 1 for uids in series.values()
        ),
        "studies_in": len(studies_in),
        "studies_out": len(studies_out - {""}),
    }


def burned_in_probe(samples: Path, work: Path) -> dict[str, str]:
    """What each tool does with one file declaring ``BurnedInAnnotation YES``: refused, warned, or written silently."""
    src = work / "burned_in" / "input"
    src.mkdir(parents=True)
    ds = pydicom.dcmread(samples / "CT_small.dcm")
    ds.BurnedInAnnotation = "YES"
    ds.save_as(src / "burned.dcm")
    result = {}
    from monai_jepa.apps.deid import anonymize
    from monai_jepa.data.errors import BurnedInAnnotationError

    for key in ("monai_jepa", "monai_jepa_shift"):
        try:
            anonymize(src, work / "burned_in" / key, salt=SALT)
            result[key] = "written"
        except BurnedInAnnotationError:
            result[key] = "refused (BurnedInAnnotationError; --allow_burned_in to override)"
    for key in ("deid", "deid_private"):
        out = run_deid(src, work / "burned_in" / key, remove_private=key == "deid_private")
        result[key] = "written, no warning" if out["burned.dcm"] is not None else "not written"
    out_dir = work / "burned_in" / "dicognito"
    proc = subprocess.run(
        [sys.executable, "-m", "dicognito", "-o", str(out_dir), "--seed", SEED, "--quiet", str(src)],
        capture_output=True,
        text=True,
    )
    written = out_dir.is_dir() and any(out_dir.iterdir())
    warned = "Burned In Annotation is YES" in proc.stdout + proc.stderr
    result["dicognito"] = ("written" if written else "not written") + (", warning printed" if warned else "")
    return result


# ----------------------------------------------------------------------------------------------------------- main
def _cell(counter: Counter) -> str:
    parts = [f"{name} {counter[name]}" for name in OUTCOMES if counter.get(name)]
    return ", ".join(parts) if parts else "-"


def _warm_up(tools: list[str]) -> None:
    """Import the tools' modules before timing them."""
    import monai_jepa.apps.deid  # noqa: F401

    if any(t.startswith("deid") for t in tools):
        import deid.dicom  # noqa: F401


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), help="DICOM folders under --data")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS), help="tools to compare")
    parser.add_argument("--name", default="deid_compare", help="results file name (without extension)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    missing = [
        p for p in ("deid", "dicognito") if _version(p) == "not installed" and any(t.startswith(p) for t in args.tools)
    ]
    if missing:
        sys.exit(f"install {' '.join(missing)} first: pip install {' '.join(missing)} (or the deid-compare extra)")
    for name in args.sets:
        if not (args.data / name).is_dir():
            sys.exit(f"{args.data / name} not found: pass --data (the shared data folder)")

    _warm_up(args.tools)
    totals: dict[str, dict[str, Counter]] = {t: defaultdict(Counter) for t in args.tools}
    per_set: dict[str, dict] = {}
    checks: dict[str, Counter] = {t: Counter() for t in args.tools}
    seconds: dict[str, float] = Counter()
    with tempfile.TemporaryDirectory(prefix="monai_jepa_deid_compare_") as tmp:
        work = Path(tmp)
        for name in args.sets:
            originals = {}
            per_set[name] = {}
            for tool in args.tools:
                src = work / name / tool / "input"
                shutil.copytree(args.data / name, src, ignore=shutil.ignore_patterns(".*"))  # a copy per tool
                if not originals:
                    originals = {rel: pydicom.dcmread(src / rel) for rel in _inputs(src)}
                out = work / name / tool / "output"
                t0 = time.perf_counter()
                mapping = TOOLS[tool][1](src, out)
                seconds[tool] += time.perf_counter() - t0
                pairs, set_counts = {}, defaultdict(Counter)
                for rel, path in resolve_collisions(mapping, originals).items():
                    anon = None
                    if path is not None:
                        with contextlib.suppress(Exception):
                            anon = pydicom.dcmread(path, force=True)
                    pairs[rel] = (originals[rel], anon)
                    if anon is None:
                        continue  # not written, overwritten by another output, or unreadable: see the checks
                    for group, counter in measure_file(
                        originals[rel], anon, rel, path.relative_to(out).as_posix()
                    ).items():
                        set_counts[group].update(counter)
                        totals[tool][group].update(counter)
                result = check_outputs(pairs)
                checks[tool].update(result)
                groups = {g: dict(c) for g, c in set_counts.items() if not g.startswith("keyword:")}
                per_set[name][tool] = {"groups": groups, "checks": result}
                print(f"{name}: {tool} done ({result['written']}/{result['files']} written)", flush=True)
        samples = args.data / "dicom_samples"
        probe = burned_in_probe(samples, work) if (samples / "CT_small.dcm").is_file() else {}

    versions = {"monai_jepa": _version("monai_jepa"), "deid": _version("deid"), "dicognito": _version("dicognito")}
    versions["pydicom"] = pydicom.__version__
    labels = [TOOLS[t][0] for t in args.tools]
    num_files = checks[args.tools[0]]["files"]
    lines = [
        "# DICOM de-identification: what monai_jepa, deid and dicognito keep, remove and replace",
        "",
        f"Data: {', '.join(f'`{s}`' for s in args.sets)} ({num_files} files), each tool run on its own copy. "
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Counts are attribute occurrences with a non-empty value in the input, summed over the files: `kept` (same "
        "value), `replaced` (another non-empty value), `emptied` (present, zero length), `removed` (absent). "
        "Private tags are counted at any depth (a private sequence counts once, its content too). Only outputs "
        "that exist are counted (see `files written`: an output overwritten by another one is not).",
        "",
        "| attribute group | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for group in ROW_ORDER:
        lines.append(f"| {group} | " + " | ".join(_cell(totals[t][group]) for t in args.tools) + " |")
    lines += [
        "",
        "## Outputs",
        "",
        "| check | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    rows = [
        ("files written", "written", "files"),
        ("still a DICOM instance (SOP Class UID and SOP Instance UID present)", "valid_instance", "written"),
        ("pixel data unchanged", "pixels_unchanged", "written"),
        ("Patient Identity Removed = YES", "patient_identity_removed", "written"),
        ("... of which already YES in the input", "patient_identity_removed_in", "written"),
        ("series kept apart and whole (one new Series Instance UID per input series)", "series_linked", "series_in"),
        ("distinct Study Instance UIDs (output / input)", "studies_out", "studies_in"),
    ]
    for label, key, of in rows:
        lines.append(f"| {label} | " + " | ".join(f"{checks[t][key]} / {checks[t][of]}" for t in args.tools) + " |")
    if probe:
        lines.append(
            "| a file declaring BurnedInAnnotation YES | " + " | ".join(probe.get(t, "-") for t in args.tools) + " |"
        )
    lines.append("| seconds (all sets) | " + " | ".join(f"{seconds[t]:.1f}" for t in args.tools) + " |")
    payload = {
        "sets": args.sets,
        "num_files": num_files,
        "tools": {t: TOOLS[t][0] for t in args.tools},
        "versions": versions,
        "groups": {t: {g: dict(totals[t][g]) for g in ROW_ORDER} for t in args.tools},
        "keywords": {
            t: {g.split(":", 1)[1]: dict(c) for g, c in sorted(totals[t].items()) if g.startswith("keyword:")}
            for t in args.tools
        },
        "checks": {t: dict(checks[t]) for t in args.tools},
        "burned_in_probe": probe,
        "seconds": {t: round(seconds[t], 2) for t in args.tools},
        "per_set": per_set,
    }
    paths = write_results(args.name, payload, "\n".join(lines))
    print("\n".join(lines))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
