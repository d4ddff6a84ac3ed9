"""Parquet files, as the Hugging Face Hub serves every data set (`data/train-00000-of-00001.parquet`, ...).

``--data`` names one ``.parquet`` file, or a folder of them (at top level or in ``data/``) whose names say their
split: ``train*`` the training split, ``test*`` (else ``validation*`` / ``valid*`` / ``val*``) the test split.
What a file holds decides its kind: a column of images (Hugging Face's ``Image`` feature, a struct of ``bytes``
and ``path``, or a binary column) makes an image set (`sslab.data.image`), else a column of strings a text set
(`sslab.data.text`). Class names come from the ``ClassLabel`` feature that Hugging Face keeps in the schema's
metadata, else from the label values. Reading needs pyarrow (``pip install 'sslab[parquet]'``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from sslab.data.base import one_line
from sslab.errors import SslabError

TEST_PREFIXES = ("test", "validation", "valid", "val")  # the test split's file name, the first found


def _pyarrow(where) -> object:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SslabError(f"{where}: reading Parquet needs pyarrow: pip install 'sslab[parquet]'") from None
    return pq


SPLIT_WORDS = ("train",) + TEST_PREFIXES


def _split_of(f: Path, root: Path) -> str | None:
    """The split a Parquet file belongs to: its name's start (`train-00000-of-00001.parquet`), else a folder on its
    path named for one (the Hub's converted layout, `default/train/0000.parquet`)."""
    for word in SPLIT_WORDS:
        if f.name.lower().startswith(word):
            return word
    for part in reversed(f.relative_to(root).parts[:-1]):
        if part.lower() in SPLIT_WORDS:
            return part.lower()
    return None


def parquet_parts(spec: str | Path) -> dict | None:
    """{"name", "train": files, "tests": [files of each candidate test split, in the order of TEST_PREFIXES]} of a
    ``.parquet`` file or a folder holding them within three levels, as the Hub lays them out (`data/train-*.parquet`,
    a configuration's folder `plain_text/train-*.parquet`, the converted `default/train/0000.parquet`), split by
    file or folder name; None when `spec` is neither. Files of several configurations are an error naming them."""
    p = Path(spec).expanduser()
    if p.is_file():
        return {"name": p.stem, "train": [p], "tests": []} if p.suffix.lower() == ".parquet" else None
    if not p.is_dir():
        return None
    files, seen = [], 0
    try:
        for dirpath, dirnames, filenames in os.walk(p):
            depth = len(Path(dirpath).relative_to(p).parts)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < 3 else []
            files += [Path(dirpath) / f for f in sorted(filenames) if f.lower().endswith(".parquet")
                      and not f.startswith(".")]
            seen += len(filenames)
            if seen > 20000 and not files:  # a large folder of other files (images): not Parquet data
                return None
    except OSError:
        return None
    if not files:
        return None
    name = p.resolve().name or str(p)
    if len(files) == 1:
        return {"name": name, "train": files, "tests": []}
    splits = {f: _split_of(f, p) for f in files}
    configs = sorted({"/".join(x for x in f.relative_to(p).parts[:-1] if x.lower() not in SPLIT_WORDS + ("data",))
                      for f in files})
    if len(configs) > 1:
        raise SslabError(f"{p}: Parquet files of {len(configs)} configurations ({', '.join(c or '.' for c in configs)})"
                         "; give the folder of one")
    train = [f for f in files if splits[f] == "train"]
    if not train:
        raise SslabError(f"{p}: {len(files)} Parquet files and none named train* (the training split; test* or "
                         "validation* the test split)")
    tests = [group for word in TEST_PREFIXES if (group := [f for f in files if splits[f] == word])]
    return {"name": name, "train": train, "tests": tests}


def drop_unlabelled(rows: list[dict], column: str | None, where: Path, say) -> list[dict]:
    """`rows` less those without a label in `column` (-1, Hugging Face's "no label", or empty), said in one line;
    all of them when none has one (an unlabelled split)."""
    if column is None:
        return rows
    keep = [r for r in rows if r.get(column) not in (None, -1, "", "-1")]
    if keep and len(keep) < len(rows):
        say(f"{where.name}: {len(rows) - len(keep):,} rows without a label in {column!r} (-1 or empty) left out")
    return keep or rows


def labelled_test(parts: dict, column: str | None, say) -> tuple[list[dict], list[Path]]:
    """The rows and files of the first candidate test split with labels in `column` ([] when there is none: a
    fixed part of the training rows is then the test split); a split passed over for having none (GLUE's test
    sets: every label -1) is said in one line."""
    for files in parts["tests"]:
        rows, _ = read_parquet(files)
        if column is None or not unlabelled(rows, column):
            return drop_unlabelled(rows, column, files[0], say), files
        later = len(files) and files is not parts["tests"][-1]
        say(f"{files[0].name}: no labels ({column!r} is -1 or empty in every row): "
            + ("the next split is the test split" if later else "a fixed part of the training rows is the test split"))
    return [], []


def _image_column(schema) -> str | None:
    import pyarrow as pa

    for field in schema:
        t = field.type
        if pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields)):
            return field.name
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return field.name
    return None


def parquet_kind(spec: str | Path) -> str | None:
    """"image" or "text" for Parquet data (by its first file's columns), None for anything else (or when pyarrow
    is missing: the loader then says what to install)."""
    try:
        parts = parquet_parts(spec)
    except SslabError:
        return None
    if not parts:
        return None
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(parts["train"][0])
    except Exception:  # noqa: BLE001 -- not readable (or no pyarrow): the loader gives the one-line reason
        return None
    if _image_column(schema) is not None:
        return "image"
    return "text" if any(pa.types.is_string(f.type) or pa.types.is_large_string(f.type) for f in schema) else None


def read_parquet(files: list[Path]) -> tuple[list[dict], dict[str, list[str]]]:
    """The rows of Parquet `files` (one table: the same columns in each) as dicts, and {column: class names} of the
    ``ClassLabel`` features Hugging Face recorded in the schema's metadata."""
    pq = _pyarrow(files[0])
    rows: list[dict] = []
    names: dict[str, list[str]] = {}
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as err:  # noqa: BLE001 -- pyarrow's errors (ArrowInvalid, OSError) in one line
            raise SslabError(f"cannot read {f}: {one_line(err)}") from None
        if rows and set(table.column_names) != set(rows[0]):
            raise SslabError(f"{f}: columns {table.column_names} differ from those of {files[0].name}")
        rows.extend(table.to_pylist())
        names.update(_class_names(table.schema.metadata or {}))
    if not rows:
        raise SslabError(f"{files[0]}: no rows")
    return rows, names


def _class_names(meta: dict) -> dict[str, list[str]]:
    try:
        info = json.loads(meta.get(b"huggingface", b"{}"))
    except ValueError:
        return {}
    feats = (info.get("info") or {}).get("features") or {} if isinstance(info, dict) else {}
    return {k: [str(n) for n in f["names"]] for k, f in feats.items()
            if isinstance(f, dict) and f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list)}


def with_class_names(rows: list[dict], names: dict[str, list[str]]) -> list[dict]:
    """`rows` with each ClassLabel column's integers as its class names (-1, Hugging Face's "no label", and other
    values outside the names stay as they are)."""
    if not names:
        return rows
    out = []
    for r in rows:
        r = dict(r)
        for col, cls in names.items():
            v = r.get(col)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(cls):
                r[col] = cls[v]
        out.append(r)
    return out


def unlabelled(rows: list[dict], column: str | None) -> bool:
    """Whether every row's `column` is empty or -1 (GLUE's test splits: labels withheld)."""
    return column is None or all(r.get(column) in (None, -1, "", "-1") for r in rows)
