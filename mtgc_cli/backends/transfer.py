"""Run folders sent between a Ray node and the driver: packed as a tar, unpacked, put in place."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

from mtgc_cli import runs


def pack(run_dir: Path) -> bytes:
    """The run folder as an uncompressed tar (checkpoints hardly compress; hard links are kept)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(run_dir, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, run_dir: Path) -> None:
    """Extract a :func:`pack`-ed run folder into ``run_dir`` (created; it must not exist)."""
    run_dir.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(run_dir, filter="data")  # nothing outside run_dir, no device files
        else:  # Python < 3.10.12
            tar.extractall(run_dir)


def replace_run_dir(run_dir: Path, data: bytes) -> None:
    """Put a copied-back run folder in place of ``run_dir``; the old one goes once the new is whole."""
    incoming = run_dir.with_name(f".{run_dir.name}.incoming-{os.getpid()}")
    shutil.rmtree(incoming, ignore_errors=True)
    unpack(data, incoming)
    if not run_dir.exists():
        incoming.rename(run_dir)
        return
    old = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    run_dir.rename(old)
    incoming.rename(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def relocate_summary(run_dir: Path, target: Path) -> None:
    """summary.json of a run made in a temporary folder names the folder it is copied back to."""
    summary = runs.read_summary(run_dir)
    if summary is None:
        return
    summary.run_dir = str(target)
    saved = summary.checkpoint
    if saved and saved.get("path"):
        saved["path"] = str(target / Path(saved["path"]).relative_to(run_dir))
    runs.write_summary(run_dir, summary)
