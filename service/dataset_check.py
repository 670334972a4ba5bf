"""Uploaded files are validated in a child process with a memory limit, so that a file that
decodes to far more than it weighs (a Parquet decompression bomb) costs the child, never the API:
the API's memory stays as it was whatever the file holds, and a child over its limit ends with a
clear 413. The child reads the file on stdin (the spooled upload itself, a seekable file, read a
line or a Parquet batch at a time: a 1 GB file costs the child the memory of its longest line)
and answers one JSON line on stdout:

    {"rows": 1234}
    {"status": 422, "code": "invalid_dataset", "message": "line 7: JSON nested too deeply"}

`python -m service.dataset_check FORMAT KIND SOURCE TARGET MAX_ROWS MAX_CELL MAX_DECODED MEMORY`
is the child; `validate_upload` starts it. An invalid file's answer carries every bad line
(``details``) and the field the error belongs to.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

from service.dataset_files import Limits, count_valid_rows
from service.errors import InvalidDataset, PayloadTooLarge, ServiceError

log = logging.getLogger("service.dataset_check")
MIB = 1 << 20
ROOT = str(Path(__file__).resolve().parents[1])  # the checkout that holds `service`


def validate_upload(path: Path, fmt: str, fields: tuple[str, str], limits: Limits, *,
                    memory_mb: int, timeout_s: float, kind: str = "pairs") -> int:
    """The number of valid rows of the file at ``path``, validated in a child limited to ``memory_mb`` of
    address space and ``timeout_s`` seconds. Raises `InvalidDataset` naming the line or row,
    `PayloadTooLarge` when the file decodes to more than the limits allow."""
    # -S and this process's sys.path: the same code, without the site start-up's cost. The child
    # limits itself before it reads a byte (no preexec_fn: unsafe in a threaded server).
    command = [sys.executable, "-S", "-m", "service.dataset_check", fmt, kind, *fields,
               str(limits.max_rows), str(limits.max_cell_bytes), str(limits.max_decoded_bytes),
               str(memory_mb * MIB)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, sys.path)]),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # no per-thread buffers
    try:
        with open(path, "rb") as upload:
            child = subprocess.run(command, stdin=upload, capture_output=True,
                                   timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidDataset(f"validating the file took longer than {timeout_s:g} s "
                             "(GREENTRAINER_UPLOAD_VALIDATION_TIMEOUT_S)") from None
    try:
        answer = json.loads(child.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        log.warning("upload validator ended with %s: %s", child.returncode,
                    child.stderr.decode(errors="replace")[-2000:])
        raise PayloadTooLarge(f"the file needs more than {memory_mb} MiB to validate "
                              "(GREENTRAINER_UPLOAD_VALIDATION_MEMORY_MB)", field="file") from None
    if "rows" in answer:
        return int(answer["rows"])
    field = str(answer.get("field") or "file")
    if answer.get("status") == 413:
        raise PayloadTooLarge(str(answer.get("message")), field=field)
    raise InvalidDataset(str(answer.get("message")), field=field, details=answer.get("details"))


def _answer(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    fmt, kind, source, target, max_rows, max_cell, max_decoded, memory_bytes = argv
    resource.setrlimit(resource.RLIMIT_AS, (int(memory_bytes), int(memory_bytes)))
    rows: int | None = None
    try:
        rows = count_valid_rows(sys.stdin.buffer, fmt, source_field=source, target_field=target,
                                max_rows=int(max_rows), kind=kind, max_cell_bytes=int(max_cell),
                                max_decoded_bytes=int(max_decoded))
    except ServiceError as exc:
        _answer({"status": exc.status_code, "code": exc.code, "message": exc.message,
                 "field": exc.field, "details": exc.details})
        return 0
    except MemoryError:
        pass  # answered below, once the traceback (and the line it holds) has been let go
    if rows is None:
        _answer({"status": 413, "code": "payload_too_large", "message": "the file decodes to "
                 "more than the validator's memory limit (GREENTRAINER_UPLOAD_VALIDATION_MEMORY_MB)"})
        return 0
    _answer({"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
