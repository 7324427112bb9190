"""Write records: small JSON objects that vouch for data written before them.

Ingestion writes one completion record per (track, contig) piece (``ingest_progress/<name>.json``)
and stage 2 one marker per finished block (``genome_fit/<kind>/<first>-<end>/zarr.json``, a zarr
group whose attributes are the record). The protocol is the same for both:

- the record is written *after* every chunk of the data it vouches for, whole or not at all
  (:meth:`~epitensor.store.location.StoreLocation.write_bytes`: a hidden temporary file renamed
  into place on a local store, one PUT on an object store), so a record proves its data complete;
- each writer owns its record: no two tasks ever touch the same file;
- a record cut short by a crash cannot be read and counts as missing: the work is redone;
- records are listed freshly (one recursive listing on an object store) and read concurrently.

Records written by earlier versions (marker groups written by zarr, records written by ingestion
itself) have the same names and contents, and are read the same way.
"""

from __future__ import annotations

import json

from .location import locate
from .metadata import remove_interrupted_writes, sync_metadata
from .tracks import open_zarr_group

_GROUP_META = {"zarr_format": 3, "node_type": "group"}


def prepare_records(path, group: str, subgroups=()) -> None:
    """Create the zarr group(s) that hold records and sweep the temporary files of a killed run.

    Call on the driver before any task writes (``subgroups``: children of ``group``, such as
    ``("factors", "imputed")``).

    Examples
    --------
    >>> prepare_records("compendium.zarr", "ingest_progress")   # doctest: +SKIP
    """
    root = open_zarr_group(path)
    created = group not in root
    parent = root.require_group(group)
    for name in subgroups:
        created = created or name not in parent
        parent.require_group(name)
    if created:
        sync_metadata(path)
    location = locate(path)
    if location.is_local:  # an object store has no temporary files: one PUT per record
        for leftover in (location.path / group).rglob(".*.tmp"):  # from a run killed mid-write
            leftover.unlink(missing_ok=True)
        remove_interrupted_writes(path)


def write_record(path, name: str, record: dict, *, as_group: bool = False) -> None:
    """Write the record ``name`` (relative to the store) whole; call it after the data it vouches for.

    ``as_group``: the record is the attributes of a zarr group ``name`` (its ``zarr.json``).
    """
    location = locate(path)
    if as_group:
        name, record = f"{name}/zarr.json", {**_GROUP_META, "attributes": record}
        if location.is_local:
            (location.path / name).parent.mkdir(parents=True, exist_ok=True)
    location.write_bytes(name, json.dumps(record, sort_keys=True).encode())


def read_records(path, group: str, *, as_groups: bool = False) -> dict[str, dict]:
    """Every readable record directly under ``group``: name -> record, sorted by name.

    File records are named by their file name (``<name>.json``); group records (``as_groups``) by
    their group's name, and the record is the group's attributes. Unreadable records (cut short
    by a crash) are left out.
    """
    location = locate(path)
    if as_groups:
        names = {n.partition("/")[0]: f"{group}/{n}" for n in location.list(group)
                 if n.count("/") == 1 and n.endswith("/zarr.json")}
    else:
        names = {n: f"{group}/{n}" for n in location.list(group)
                 if "/" not in n and n.endswith(".json") and n != "zarr.json"}
    raw = location.read_many(sorted(names.values()))
    out = {}
    for name, key in sorted(names.items()):
        try:
            record = json.loads(raw[key])
        except (KeyError, ValueError):
            continue  # missing since the listing, or cut short by a crash: not complete
        if as_groups:
            record = record.get("attributes", {}) if isinstance(record, dict) else None
        if isinstance(record, dict):
            out[name] = record
    return out


def remove_record(path, name: str, *, as_group: bool = False) -> None:
    """Delete the record ``name`` (absent is fine); ``as_group`` removes the whole group."""
    locate(path).delete(name, recursive=as_group)
