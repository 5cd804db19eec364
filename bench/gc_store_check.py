#!/usr/bin/env python3
"""After a GC soak, with berth stopped: the blob folder holds exactly the
referenced blobs. Referenced (the GC design's word): a manifest in some
repository, or a child (layer, config, index child) some manifest names.
Reads meta.db read-only and lists blobs/<algorithm>/<xx>/<hex>; prints
PASS/FAIL lines and "N passed, M failed". Python 3 standard library only.

usage: gc_store_check.py DATA_DIR
"""
import os
import sqlite3
import sys


def blob_files(root):
    """Digests of the files under blobs/, and paths that are not blob files."""
    files, strays = set(), []
    base = os.path.join(root, "blobs")
    for dirpath, _, names in os.walk(base):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), base).split(os.sep)
            if len(rel) == 3 and rel[1] == rel[2][:2]:
                files.add(f"{rel[0]}:{rel[2]}")
            else:
                strays.append("/".join(rel))
    return files, strays


def blob_path(root, digest):
    algorithm, hex_ = digest.split(":", 1)
    return os.path.join(root, "blobs", algorithm, hex_[:2], hex_)


def table_exists(db, name):
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    db = sqlite3.connect(f"file:{os.path.join(root, 'meta.db')}?mode=ro", uri=True)
    manifests = {d for (d,) in db.execute("SELECT digest FROM manifests")}
    children = {d for (d,) in db.execute("SELECT child FROM manifest_refs")}
    referenced = manifests | children
    files, strays = blob_files(root)
    # A link a manifest of its repository does not name (nor is): GC removes it past the grace.
    dangling = db.execute(
        "SELECT COUNT(*) FROM repo_blobs b WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r "
        "WHERE r.repo_id = b.repo_id AND r.child = b.digest) AND NOT EXISTS (SELECT 1 FROM manifests m "
        "WHERE m.repo_id = b.repo_id AND m.digest = b.digest)").fetchone()[0]

    checks = []
    orphans, missing = sorted(files - referenced), sorted(referenced - files)
    size = sum(os.path.getsize(blob_path(root, d)) for d in files)
    print(f"store: {len(files)} blob files ({size / 1e6:.1f} MB), {len(referenced)} referenced digests "
          f"({len(manifests)} manifests), {len(strays)} other files under blobs/")
    for name, items in (("orphan files (on disk, referenced by nothing)", orphans),
                        ("missing files (referenced, not on disk)", missing),
                        ("stray files under blobs/", strays)):
        for d in items[:5]:
            print(f"  {name}: {d}")
        checks.append((f"no {name} ({len(items)})", not items))
    checks.append((f"no dangling links left ({dangling})", dangling == 0))
    if table_exists(db, "blobs"):
        rows = {d for (d,) in db.execute("SELECT digest FROM blobs")}
        tombstones = db.execute("SELECT COUNT(*) FROM blobs WHERE deleting_since IS NOT NULL").fetchone()[0]
        checks.append((f"blobs table matches the files ({len(rows - files)} rows without a file, "
                       f"{len(files - rows)} files without a row)", rows == files))
        checks.append((f"no tombstone left ({tombstones})", tombstones == 0))
    else:
        checks.append(("meta.db has the GC blobs table (schema v5)", False))
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    passed = sum(ok for _, ok in checks)
    print(f"{passed} passed, {len(checks) - passed} failed")
    sys.exit(0 if passed == len(checks) else 1)


if __name__ == "__main__":
    main()
