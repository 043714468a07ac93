"""The MetaSchedule tuning database that lasts: records per target fingerprint, locked, replaced atomically.

Layout: ``ROOT/<fingerprint>/`` holds MetaSchedule's JSON database (database_workload.json,
database_tuning_record.json) and meta.json (the TVM target and the TVM version that measured it).
ROOT is the user cache's ``tvm/tuning`` or a directory the user names (--db). A record measured for
one target is never applied to another: the fingerprint covers the TVM target dict (triple, CPU,
features, cores) and TVM's major.minor version, whose IR the records are written in.

Writers take the lock, build the merged database in a staging directory and move its files into
place; readers take the same lock and copy before loading, so nobody reads a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...cache import cache_dir
from ...errors import BadInputError

if TYPE_CHECKING:
    from .settings import TvmTargetSettings

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
META = "meta.json"
LOCK = ".lock"
# MetaSchedule stores a failed measurement with this run time (seconds); it is not a result.
FAILED_RUN_SECS = 1e9
LOCK_TIMEOUT_S = 120.0


def tvm_minor_version() -> str:
    import tvm

    return ".".join(tvm.__version__.split(".")[:2])


def fingerprint(target: dict[str, object], tvm_version: str) -> str:
    """A readable, stable directory name for (TVM target, TVM version)."""
    canonical = json.dumps({"target": target, "tvm": tvm_version}, sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    triple = str(target.get("mtriple", "unknown")).split("-")[0]
    return f"{triple}-{target.get('mcpu', 'generic')}-{target.get('num-cores', 0)}c-{digest}"


def default_root() -> Path:
    return cache_dir("tvm") / "tuning"


@dataclass(frozen=True)
class DatabaseSummary:
    fingerprint: str
    target: dict[str, object]
    tvm: str
    workloads: int
    records: int
    valid_records: int
    bytes: int


class TuningDatabase:
    """The records of one target fingerprint under ``root``."""

    def __init__(self, root: Path, fingerprint_: str, target: dict[str, object], tvm_version: str):
        self.root = root
        self.fingerprint = fingerprint_
        self.target = target
        self.tvm_version = tvm_version
        self.path = root / fingerprint_

    @classmethod
    def for_target(cls, settings: TvmTargetSettings, db_dir: str | os.PathLike[str] | None = None) -> TuningDatabase:
        target = settings.to_tvm_dict()
        version = tvm_minor_version()
        root = Path(db_dir).expanduser() if db_dir else default_root()
        if root.exists() and not root.is_dir():
            raise BadInputError(f"{root}: the tuning database must be a directory")
        return cls(root, fingerprint(target, version), target, version)

    @contextmanager
    def locked(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / f"{self.fingerprint}{LOCK}"))
        try:
            with lock.acquire(timeout=LOCK_TIMEOUT_S):
                yield
        except Timeout:
            raise BadInputError(
                f"{self.path}: the tuning database is locked by another edgecc process for over {LOCK_TIMEOUT_S:.0f} s"
            ) from None

    def exists(self) -> bool:
        return (self.path / RECORDS).is_file()

    def _copy_to(self, dest: Path) -> None:
        for name in (WORKLOADS, RECORDS):
            src = self.path / name
            if src.is_file():
                shutil.copyfile(src, dest / name)
            else:
                (dest / name).touch()

    def load(self):
        """A MetaSchedule database holding this target's records (an in-memory snapshot)."""
        from tvm.s_tir import meta_schedule as ms

        with tempfile.TemporaryDirectory(prefix="edgecc-tvm-db-") as tmp:
            with self.locked():
                self._copy_to(Path(tmp))
            json_db = ms.database.JSONDatabase(work_dir=tmp, allow_missing=True)
            memory = ms.database.MemoryDatabase()
            _copy_records(json_db, memory)
        return memory

    load_for_compile = load

    def count_records(self, *, valid_only: bool = True) -> int:
        return sum(1 for r in _record_lines(self.path / RECORDS) if not valid_only or _is_valid(r))

    def merge(self, source: object) -> int:
        """Add ``source``'s records (a MetaSchedule database) that this database lacks; returns how many.

        The merged files are written to a staging directory and moved into place under the lock.
        """
        from tvm.s_tir import meta_schedule as ms

        with self.locked():
            self.path.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            try:
                current = ms.database.JSONDatabase(work_dir=str(_snapshot(self, staging / "old")), allow_missing=True)
                merged = json_database(staging / "new")
                _copy_records(current, merged)
                added = _copy_records(source, merged, skip_seen_in=merged)
                for name in (WORKLOADS, RECORDS):
                    os.replace(staging / "new" / name, self.path / name)
                _write_json_atomic(self.path / META, {"target": self.target, "tvm": self.tvm_version})
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return added

    def prune(self) -> tuple[int, int]:
        """Keep only the best valid record per workload; returns (records before, after)."""
        from tvm.s_tir import meta_schedule as ms

        before = self.count_records(valid_only=False)
        with self.locked():
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            try:
                import tvm_ffi

                current = ms.database.JSONDatabase(work_dir=str(_snapshot(self, staging / "old")), allow_missing=True)
                best: dict[int, object] = {}
                for rec in _valid_records(current):
                    key = int(tvm_ffi.structural_hash(rec.workload.mod))
                    if key not in best or _mean(rec.run_secs) < _mean(best[key].run_secs):  # type: ignore[attr-defined]
                        best[key] = rec
                pruned = json_database(staging / "pruned")
                for rec in best.values():
                    pruned.commit_tuning_record(_rebind(rec, pruned.commit_workload(rec.workload.mod)))  # type: ignore[attr-defined]
                for name in (WORKLOADS, RECORDS):
                    os.replace(staging / "pruned" / name, self.path / name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return before, self.count_records(valid_only=False)

    def summary(self) -> DatabaseSummary:
        lines = list(_record_lines(self.path / RECORDS))
        workloads = sum(1 for line in _lines(self.path / WORKLOADS))
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file()) if self.path.is_dir() else 0
        return DatabaseSummary(
            self.fingerprint, self.target, self.tvm_version, workloads, len(lines), sum(1 for r in lines if _is_valid(r)), size
        )


def list_databases(db_dir: str | os.PathLike[str] | None = None) -> list[TuningDatabase]:
    """Every target fingerprint stored under the root."""
    root = Path(db_dir).expanduser() if db_dir else default_root()
    found = []
    if root.is_dir():
        for d in sorted(p for p in root.iterdir() if p.is_dir() and (p / RECORDS).is_file()):
            meta = _read_meta(d)
            found.append(TuningDatabase(root, d.name, meta.get("target", {}), str(meta.get("tvm", "?"))))
    return found


def export_databases(dbs: list[TuningDatabase], archive: Path) -> int:
    """Write ``dbs`` into a .tar.gz (one directory per fingerprint); returns the records written."""
    if not dbs:
        raise BadInputError("nothing to export: the tuning database is empty")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".partial")
    total = 0
    with tarfile.open(tmp, "w:gz") as tar:
        for db in dbs:
            with db.locked():
                for name in (WORKLOADS, RECORDS, META):
                    if (db.path / name).is_file():
                        tar.add(db.path / name, arcname=f"{db.fingerprint}/{name}")
            total += db.count_records(valid_only=False)
    os.replace(tmp, archive)
    return total


def import_databases(archive: Path, db_dir: str | os.PathLike[str] | None = None) -> list[tuple[str, int]]:
    """Merge the fingerprints in ``archive`` (made by export) into the local root; (fingerprint, added) each."""
    from tvm.s_tir import meta_schedule as ms

    if not archive.is_file():
        raise BadInputError(f"{archive}: no such file")
    root = Path(db_dir).expanduser() if db_dir else default_root()
    results = []
    with tempfile.TemporaryDirectory(prefix="edgecc-tvm-import-") as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BadInputError(f"{archive}: not an edgecc tuning database export ({e})") from None
        dirs = sorted(p for p in Path(tmp).iterdir() if p.is_dir() and (p / RECORDS).is_file() and (p / META).is_file())
        if not dirs:
            raise BadInputError(f"{archive}: holds no tuning database (expected FINGERPRINT/{RECORDS} and {META})")
        for d in dirs:
            meta = _read_meta(d)
            target, version = meta.get("target"), str(meta.get("tvm", ""))
            if not isinstance(target, dict) or fingerprint(target, version) != d.name:
                raise BadInputError(f"{archive}: {d.name}/{META} does not match its directory name; the export is damaged")
            if version != tvm_minor_version():
                raise BadInputError(
                    f"{archive}: {d.name} was tuned with TVM {version}; this TVM is {tvm_minor_version()} and cannot read its records"
                )
            db = TuningDatabase(root, d.name, target, version)
            source = ms.database.JSONDatabase(work_dir=str(d), allow_missing=False)
            results.append((d.name, db.merge(source)))
    return results


# --- helpers -----------------------------------------------------------------------------------


def json_database(directory: Path, *, allow_missing: bool = True):
    """MetaSchedule's JSON database in ``directory`` (created; MetaSchedule does not create it)."""
    from tvm.s_tir import meta_schedule as ms

    directory.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(work_dir=str(directory), allow_missing=allow_missing)


def _snapshot(db: TuningDatabase, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    db._copy_to(dest)
    return dest


def _mean(run_secs) -> float:
    values = [float(v) for v in (run_secs or [])]
    return sum(values) / len(values) if values else float("inf")


def _rebind(rec, workload):
    from tvm.s_tir import meta_schedule as ms

    return ms.database.TuningRecord(rec.trace, workload, rec.run_secs, rec.target, rec.args_info)


def _valid_records(db) -> list:
    return [r for r in db.get_all_tuning_records() if _mean(r.run_secs) < FAILED_RUN_SECS]


def _copy_records(source, dest, *, skip_seen_in=None) -> int:
    """Commit every record of ``source`` into ``dest``; with ``skip_seen_in``, those it already has."""
    seen: set[tuple[int, str]] = set()
    if skip_seen_in is not None:
        seen = {_record_key(skip_seen_in, r) for r in skip_seen_in.get_all_tuning_records()}
    added = 0
    for rec in source.get_all_tuning_records():
        wl = dest.commit_workload(rec.workload.mod)
        key = _record_key(dest, rec, wl)
        if key in seen:
            continue
        seen.add(key)
        dest.commit_tuning_record(_rebind(rec, wl))
        added += 1
    return added


def _record_key(db, rec, wl=None) -> tuple[int, str]:
    import tvm_ffi

    wl = wl if wl is not None else rec.workload
    return (int(tvm_ffi.structural_hash(wl.mod)), str(rec.trace))


def _lines(path: Path) -> Iterator[str]:
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield line


def _record_lines(path: Path) -> Iterator[list]:
    for line in _lines(path):
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def _is_valid(entry: list) -> bool:
    """A stored record line is [workload index, [trace, run_secs, target, args_info]]."""
    try:
        run_secs = entry[1][1]
        return bool(run_secs) and _mean(run_secs) < FAILED_RUN_SECS
    except (IndexError, TypeError):
        return False


def _read_meta(d: Path) -> dict:
    try:
        return json.loads((d / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
