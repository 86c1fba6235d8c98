"""Reading the data people fine-tune on, row by row, without holding it all in memory.

Files: JSONL (`.jsonl`, `.ndjson`), JSON (a list of rows, or `{"train": [...]}`), CSV/TSV,
Parquet, and local Hugging Face `datasets` folders (`save_to_disk`). JSONL, JSON and CSV/TSV
may be compressed (`.gz`, `.bz2`, `.xz`, `.zst`), read through fsspec as `datasets` reads
them, and may start with a UTF-8 byte-order mark. Rows are numbered from
1: lines of a JSONL file, data rows of a CSV (the header is not counted), items of a JSON
list, rows of a Parquet table or a dataset split.

Row types, as TRL names them: `text` (language modeling), `prompt`/`completion`, and
conversational `messages` or conversational prompt/completion (lists of `{"role",
"content"}`). A row that fits none is yielded with the reason, so a report can name it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "hf-disk")
KINDS = ("text", "prompt-completion", "messages", "conversational-prompt-completion")
KIND_TITLES = {
    "text": "language modeling (text)",
    "prompt-completion": "prompt/completion",
    "messages": "conversational (messages)",
    "conversational-prompt-completion": "conversational prompt/completion",
}
CANONICAL_COLUMNS = ("text", "prompt", "completion", "messages")


@dataclass(frozen=True)
class Record:
    row: int
    data: dict[str, Any] | None  # None when the row could not be read
    error: str | None = None
    unit: str = "row"  # "line" for JSONL, whose rows are lines of the file
    format: str | None = None  # the row format it was read as (row_formats.ROW_FORMATS)

    @property
    def where(self) -> str:
        return f"{self.unit} {self.row}"


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


def compression_of(path: Path) -> str | None:
    """fsspec's name of the file's compression, from its last suffix (`d.jsonl.gz` -> gzip)."""
    return COMPRESSIONS.get(path.suffix.lower()) if not path.is_dir() else None


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (
            (path / "dataset_info.json").exists()
            or (path / "dataset_dict.json").exists()
            or (path / "state.json").exists()
        ):
            return "hf-disk"
        raise InspectorError(
            f"the folder {path} is not a saved Hugging Face dataset (no dataset_info.json or dataset_dict.json)",
            "pass a folder written by Dataset.save_to_disk, or a JSONL/JSON/CSV/Parquet file",
        )
    compression = compression_of(path)
    suffix = Path(path.stem).suffix.lower() if compression else path.suffix.lower()
    if suffix in _SUFFIXES and not (compression and _SUFFIXES[suffix] == "parquet"):
        return _SUFFIXES[suffix]
    shown = "".join(path.suffixes[-2:]).lower() if compression else suffix
    raise InspectorError(
        f"{path.name}: unknown data format {shown or '(no extension)'}",
        "use .jsonl, .json, .csv, .tsv (each may end in .gz, .bz2, .xz or .zst) or .parquet, "
        "or a saved Hugging Face dataset folder",
    )


def describe_file(path: Path) -> str:
    """`jsonl`, or `jsonl, gzip` for a compressed file."""
    fmt = detect_format(path)
    compression = compression_of(path)
    return f"{fmt}, {compression}" if compression else fmt


def _open_text(p: Path, newline: str | None = None) -> Any:
    """The file as text, decompressed, without a byte-order mark."""
    compression = compression_of(p)
    if compression is None:
        return p.open(encoding="utf-8-sig", newline=newline)
    import fsspec

    try:
        return fsspec.open(str(p), mode="rt", compression=compression, encoding="utf-8-sig", newline=newline).open()
    except (ImportError, ValueError) as exc:  # fsspec says so when zstandard is missing
        raise InspectorError(
            f"{p.name}: reading {compression}-compressed files needs a package that is not installed ({exc})",
            "pip install zstandard, or decompress the file first",
        ) from exc


def _decompression_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    return (EOFError, OSError, lzma.LZMAError, zlib.error)


def cores() -> int:
    """The CPUs this process may run on (what `inspect-data --num-proc` defaults to)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        return os.cpu_count() or 1


def parse_columns(spec: str | None) -> dict[str, str]:
    """`--columns text=body,prompt=question` -> {"text": "body", "prompt": "question"}."""
    mapping: dict[str, str] = {}
    if not spec:
        return mapping
    for part in spec.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise InspectorError(f"--columns entry {part!r} has no '='", "write it as ours=yours, e.g. text=body")
        ours, theirs = (x.strip() for x in part.split("=", 1))
        if ours not in CANONICAL_COLUMNS:
            raise InspectorError(
                f"--columns names an unknown column {ours!r}", f"map one of {', '.join(CANONICAL_COLUMNS)}"
            )
        mapping[ours] = theirs
    return mapping


def iter_records(
    path: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    columns: Mapping[str, str] | None = None,
    row_format: str = "auto",
) -> Iterator[Record]:
    """Every row of the data, in order, streaming where the format allows, in TRL's shape
    (`row_formats.normalize`): a row of `row_format` ("auto": each row's own) or the reason it is not."""
    from inspector.core.data.row_formats import ROW_FORMATS, RowFormatError, detect_row_format, normalize

    p = Path(path).expanduser()
    if not p.exists():
        raise InspectorError(f"the data file {path} does not exist", "check the path given to --data")
    fmt = detect_format(p)
    if row_format not in ROW_FORMATS:
        raise InspectorError(f"--format {row_format}: unknown row format", f"choose from {', '.join(ROW_FORMATS)}")
    if limit is not None and limit < 1:
        raise InspectorError(f"--limit must be at least 1, not {limit}", "pass a positive number")
    reader = {
        "jsonl": _jsonl,
        "json": _json,
        "csv": _csv,
        "tsv": _csv,
        "parquet": _parquet,
        "hf-disk": _hf_disk,
    }[fmt]
    rename = {theirs: ours for ours, theirs in (columns or {}).items()}
    count = 0
    try:
        for rec in reader(p, split):
            if rec.data is not None:
                data = {rename.get(k, k): v for k, v in rec.data.items()} if rename else rec.data
                try:
                    data, found = normalize(data, row_format)
                    rec = Record(rec.row, data, None, rec.unit, found)
                except RowFormatError as exc:
                    found = detect_row_format(data) if row_format == "auto" else row_format
                    rec = Record(rec.row, None, str(exc), rec.unit, found)
            yield rec
            count += 1
            if limit is not None and count >= limit:
                return
    except _decompression_errors() as exc:
        if compression_of(p) is None or isinstance(exc, InspectorError):
            raise
        raise InspectorError(
            f"{p.name} could not be decompressed as {compression_of(p)} ({exc})",
            "check the file, or decompress it first",
        ) from exc


# Python's JSON reader recurses once per level; no chat row comes near its limit of ~1,000.
TOO_DEEP = "is nested too deeply to read (lists or objects over about 1,000 levels deep)"


def _jsonl(p: Path, split: str | None) -> Iterator[Record]:
    _no_split(p, split)
    try:
        with _open_text(p) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Record(n, None, f"is not valid JSON ({exc.msg} at column {exc.colno})", "line")
                    continue
                except RecursionError:
                    yield Record(n, None, TOO_DEEP, "line")
                    continue
                rec = _as_record(n, obj)
                yield Record(rec.row, rec.data, rec.error, "line")
    except UnicodeDecodeError as exc:
        raise InspectorError(f"{p.name} is not UTF-8 text", "save the file as UTF-8") from exc


def _json(p: Path, split: str | None) -> Iterator[Record]:
    try:
        with _open_text(p) as f:
            obj = json.loads(f.read())
    except UnicodeDecodeError as exc:
        raise InspectorError(f"{p.name} is not UTF-8 text", "save the file as UTF-8") from exc
    except RecursionError as exc:
        raise InspectorError(
            f"{p.name} {TOO_DEEP}", "flatten the data: rows of plain objects, lists and strings"
        ) from exc
    except json.JSONDecodeError as exc:
        hint = " (one object per line is JSONL: name the file .jsonl)" if exc.msg.startswith("Extra data") else ""
        raise InspectorError(
            f"{p.name} is not valid JSON: {exc.msg} at line {exc.lineno}{hint}", "fix the file, or save it as JSONL"
        ) from exc
    if isinstance(obj, dict):
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        key = split or ("train" if "train" in lists else next(iter(lists), None) if len(lists) == 1 else None)
        if key is None or key not in lists:
            raise InspectorError(
                f"{p.name} is a JSON object without {'a list ' + repr(split) if split else 'one list of rows'}",
                f"pass --split with one of {', '.join(lists) or '(none: the file holds no list)'}",
            )
        obj = lists[key]
    elif split:
        raise InspectorError(f"--split {split}: {p.name} is one list of rows, with no splits", "leave out --split")
    if not isinstance(obj, list):
        raise InspectorError(
            f"{p.name} holds a JSON {type(obj).__name__}, not a list of rows", "write a list of objects"
        )
    for n, item in enumerate(obj, start=1):
        yield _as_record(n, item)


# Columns whose cells may hold JSON lists: conversations, and ShareGPT's and Alpaca's lists.
JSON_COLUMNS = ("messages", "prompt", "completion", "conversations", "history", "tools")


def _csv(p: Path, split: str | None) -> Iterator[Record]:
    _no_split(p, split)
    delimiter = "\t" if detect_format(p) == "tsv" else ","
    csv.field_size_limit(1 << 30)
    try:
        with _open_text(p, newline="") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            if not reader.fieldnames:
                return
            for n, row in enumerate(reader, start=1):
                if None in row:
                    yield Record(n, None, f"has more fields than the header ({len(reader.fieldnames)})")
                    continue
                data: dict[str, Any] = {}
                for key, value in row.items():
                    # A conversation in a CSV cell is JSON text.
                    if key in JSON_COLUMNS and value is not None and value.lstrip().startswith("["):
                        try:
                            value = json.loads(value)
                        except RecursionError:
                            yield Record(n, None, f'column "{key}" {TOO_DEEP}')
                            break
                        except json.JSONDecodeError:
                            yield Record(n, None, f'column "{key}" looks like a JSON list but is not valid JSON')
                            break
                    data[key] = value
                else:
                    yield Record(n, data)
    except UnicodeDecodeError as exc:
        raise InspectorError(f"{p.name} is not UTF-8 text", "save the file as UTF-8") from exc


def _parquet(p: Path, split: str | None) -> Iterator[Record]:
    _no_split(p, split)
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InspectorError(f"{p.name} is not a readable Parquet file ({exc})", "check the file") from exc
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield Record(n, row)


def _hf_disk(p: Path, split: str | None) -> Iterator[Record]:
    from datasets import Dataset, DatasetDict, load_from_disk

    ds = load_from_disk(str(p))
    if isinstance(ds, DatasetDict):
        names = list(ds)
        name = split or ("train" if "train" in ds else names[0] if len(names) == 1 else None)
        if name is None or name not in ds:
            raise InspectorError(
                f"the dataset {p.name} has splits {', '.join(names)}", f"pass --split with one of {', '.join(names)}"
            )
        ds = ds[name]
    elif split:
        raise InspectorError(f"--split {split}: the dataset {p.name} has no splits", "leave out --split")
    assert isinstance(ds, Dataset)
    # Arrow-backed and memory-mapped: iterating reads it in pieces.
    for n, row in enumerate(ds, start=1):
        yield Record(n, dict(row))


def _no_split(p: Path, split: str | None) -> None:
    if split:
        raise InspectorError(
            f"--split {split}: {p.name} has no splits", "splits exist only in JSON objects and dataset folders"
        )


def _as_record(n: int, obj: Any) -> Record:
    if not isinstance(obj, dict):
        return Record(n, None, f"is a JSON {type(obj).__name__}, not an object")
    return Record(n, obj)


# --- row types --------------------------------------------------------------------------------


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
    )


def classify(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(kind, None) for a row of one of TRL's types, else (None, the reason)."""
    if "messages" in data:
        if _is_messages(data["messages"]):
            return "messages", None
        return None, '"messages" is not a list of {"role": ..., "content": ...} with text contents'
    if "prompt" in data or "completion" in data:
        missing = [k for k in ("prompt", "completion") if k not in data]
        if missing:
            return None, f'has "{"prompt" if missing[0] == "completion" else "completion"}" but no "{missing[0]}"'
        p, c = data["prompt"], data["completion"]
        if isinstance(p, str) and isinstance(c, str):
            return "prompt-completion", None
        if _is_messages(p) and _is_messages(c):
            return "conversational-prompt-completion", None
        return None, '"prompt" and "completion" must both be texts, or both lists of messages'
    if "text" in data:
        if isinstance(data["text"], str):
            return "text", None
        return None, f'"text" is a {type(data["text"]).__name__}, not a string'
    keys = ", ".join(sorted(map(str, data))) or "none"
    return None, (
        f'has none of "text", "prompt"/"completion", "messages" (its columns: {keys}; map them with --columns), '
        'nor ShareGPT\'s "conversations" or Alpaca\'s "instruction"/"output"'
    )


MESSAGE_KEYS = (
    "role",
    "content",
    "tool_calls",
    "name",
    "tool_call_id",
    *("reasoning_content", "reasoning", "thinking"),  # reasoning.REASONING_FIELDS
    *("weight", "train", "loss"),  # reasoning.FLAG_FIELDS: per-message flags
)


def messages_of(kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation of a conversational row, as one list of messages (with their tool calls)."""
    msgs = data["messages"] if kind == "messages" else list(data["prompt"]) + list(data["completion"])
    return [{k: m[k] for k in MESSAGE_KEYS if m.get(k) is not None} for m in msgs]


def tools_of(data: dict[str, Any]) -> tuple[Any, ...] | None:
    """The row's tool definitions, given to the chat template (None when it has none)."""
    tools = data.get("tools")
    return tuple(tools) if isinstance(tools, list) and tools else None
