#!/usr/bin/env python3
"""Which B-trees the frames of a SQLite WAL belong to: where a write load's disk bytes go.

usage: bench/wal_census.py DB

DB is a copy of a Roster SQLite database together with its `-wal` file, taken while the server was
paused (`kill -STOP`) after a write load. The WAL is read frame by frame (header 32 bytes; each frame
a 24-byte header then one page), up to the first frame of an older generation (salts differ); a frame
whose "database size" field is non-zero ends a commit. Pages are named by the `dbstat` virtual table
of the database as it is now (opening the copy replays the WAL), so a page that moved between B-trees
during the load is counted under its last owner.

To see what a load writes before any checkpoint copies it away, run the server with checkpoints held
off for the few seconds of the load (the writer's 1000-page checkpoint; see `count_commit` in
crates/roster-store/src/sqlite.rs), e.g. in a throw-away build.
"""
import collections
import sqlite3
import struct
import sys


def main() -> None:
    path = sys.argv[1]
    with open(path + "-wal", "rb") as f:
        data = f.read()
    if len(data) < 32:
        sys.exit("empty WAL")
    _magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(">8I", data[:32])
    frame_size = 24 + page_size
    frames, offset = [], 32
    while offset + frame_size <= len(data):
        page, db_size, s1, s2 = struct.unpack(">4I", data[offset:offset + 16])
        if (s1, s2) != (salt1, salt2):
            break
        frames.append((page, db_size))
        offset += frame_size
    commits = sum(1 for _, size in frames if size)
    # Read-only: a read-write connection would checkpoint the WAL away when it closes.
    owner = dict(sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("SELECT pageno, name FROM dbstat"))
    print(f"{len(frames)} frames of {page_size} bytes in {commits} commits ({len(frames) / max(commits, 1):.1f} a commit)")
    count = collections.Counter(owner.get(page, "?") for page, _ in frames)
    for name, n in count.most_common():
        print(f"  {name:<35} {n:>8}  {n / max(commits, 1):6.2f} a commit")


if __name__ == "__main__":
    main()
