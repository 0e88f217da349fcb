#!/usr/bin/env python3
"""What the per-user log index writes when filled in batches of a given size (SQLite WAL frames per event).

The server's writer fills `log_users` about once a second (migration 0008); this replays the last events of
a database into a by-user index at other batch sizes, to see what a batch size buys.

usage: log_index_sim.py DB [N] [CHUNK ...]

DB is a copy of a roster SQLite database after a PATCH load (e.g. a bench run's data folder, with the
server stopped); it is not modified. The script copies it, builds a by-user index of every log event
but the last N (default 20000), checkpoints, then adds the last N events to that index in
transactions of CHUNK events each (sorted within a transaction), and prints the WAL frames written
per event. CHUNK ≈ a group commit's size (~14 in the bench) is what the inline index costs today;
larger CHUNKs are what an index written behind the log table, in batches, would cost.
"""
import os
import shutil
import sqlite3
import sys
import tempfile


def run(src: str, n: int, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "sim.db")
        shutil.copy(src, db)
        if os.path.exists(src + "-wal"):  # commits not yet checkpointed into the file
            shutil.copy(src + "-wal", db + "-wal")
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        last = c.execute("SELECT max(rowid) FROM logs").fetchone()[0] or 0
        c.execute("CREATE TABLE idx (tenant_id TEXT, user_id TEXT, log_id TEXT, "
                  "PRIMARY KEY (tenant_id, user_id, log_id)) WITHOUT ROWID")
        c.execute("INSERT INTO idx SELECT tenant_id, user_id, log_id FROM logs "
                  "WHERE user_id IS NOT NULL AND rowid <= ? ORDER BY 1, 2, 3", (last - n,))
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.execute("PRAGMA wal_autocheckpoint=0")
        rows = c.execute("SELECT tenant_id, user_id, log_id FROM logs "
                         "WHERE user_id IS NOT NULL AND rowid > ? ORDER BY rowid", (last - n,)).fetchall()
        for i in range(0, len(rows), chunk):
            c.execute("BEGIN")
            c.executemany("INSERT INTO idx VALUES (?, ?, ?)", sorted(rows[i:i + chunk]))
            c.execute("COMMIT")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        frames = (os.path.getsize(db + "-wal") - 32) / (page + 24)
        users = c.execute("SELECT count(DISTINCT user_id) FROM logs").fetchone()[0]
        c.close()
        print(f"events {len(rows)} (of {last}; {users} users), {chunk} per transaction: "
              f"{frames:.0f} WAL frames, {frames / max(len(rows), 1):.2f} per event")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    chunks = [int(a) for a in sys.argv[3:]] or [14, 1000, 5000, 20000]
    for chunk in chunks:
        run(sys.argv[1], n, chunk)


if __name__ == "__main__":
    main()
