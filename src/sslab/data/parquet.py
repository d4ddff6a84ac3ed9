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


def parquet_parts(spec: str | Path) -> dict | None:
    """{"name", "train": files, "tests": [files of each candidate test split, in the order of TEST_PREFIXES]} of a
    ``.parquet`` file or a folder of them (or of a ``data/`` folder of them), split by file name; None when `spec`
    is neither."""
    p = Path(spec).expanduser()
    if p.is_file():
        return {"name": p.stem, "train": [p], "tests": []} if p.suffix.lower() == ".parquet" else None
    if not p.is_dir():
        return None
    for d in (p, p / "data"):
        files = sorted(f for f in d.glob("*.parquet") if f.is_file() and not f.name.startswith(".")) \
            if d.is_dir() else []
        if files:
            break
    else:
        return None
    name = p.resolve().name or str(p)
    if len(files) == 1:
        return {"name": name, "train": files, "tests": []}
    train = [f for f in files if f.name.lower().startswith("train")]
    if not train:
        raise SslabError(f"{p}: {len(files)} Parquet files and none named train* (the training split; test* or "
                         "validation* the test split)")
    tests, seen = [], set()
    for prefix in TEST_PREFIXES:
        group = [f for f in files if f.name.lower().startswith(prefix) and f not in seen]
        if group:
            tests.append(group)
            seen.update(group)
    return {"name": name, "train": train, "tests": tests}


def labelled_test(parts: dict, column: str | None, say) -> tuple[list[dict], list[Path]]:
    """The rows and files of the first candidate test split with labels in `column` ([] when there is none: a
    fixed part of the training rows is then the test split); a split passed over for having none (GLUE's test
    sets: every label -1) is said in one line."""
    for files in parts["tests"]:
        rows, _ = read_parquet(files)
        if column is None or not unlabelled(rows, column):
            return rows, files
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
