"""Runs every DDL file of the ClickHouse sink, plus the example query of docs/SEMANTICS.md, in the modern
ClickHouse engine (chdb-core, ClickHouse 26.x in-process), and round-trips a window row, so
the SQL the pipeline ships is checked on current releases as well as on the 18.16 server the
integration tests use. Exit code 1 on any failure."""

import pathlib
import re
import sys
import tempfile

from chdb import session

ROOT = pathlib.Path(__file__).resolve().parents[2]
DDL = sorted((ROOT / "src/sink/sql").glob("*.sql"))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        for f in DDL:
            sql = f.read_text().replace("{db}", "cx")
            s.query(sql)
            s.query(sql)  # idempotent
            print(f"ok   {f.name}")
        cols = s.query("SELECT name FROM system.columns WHERE database='cx' AND table='window_aggregates' ORDER BY position", "CSV").bytes().decode().split()
        assert len(cols) == 31 and cols[-1].strip('"') == "sign", cols
        s.query(
            "INSERT INTO cx.window_aggregates (window_size_s, window_start, window_end, grouping, team, revision, version, nps_n, promoters, detractors, csat_n, csat_satisfied, contacts, handle_ms) "
            "VALUES (3600, '2026-11-01 10:00:00', '2026-11-01 11:00:00', 'team', 'billing', 0, 4, 10, 6, 2, 4, 3, 5, 2500000), "
            "(3600, '2026-11-01 10:00:00', '2026-11-01 11:00:00', 'team', 'billing', 0, 2, 5, 1, 1, 0, 0, 0, 0), "
            "(3600, '2026-11-01 10:00:00', '2026-11-01 11:00:00', 'team', 'billing', 9, 1, 10, 10, 0, 0, 0, 0, 0)"
        )
        # A revised survey's own rows: ten promoters taken out of this segment (sign -1).
        s.query(
            "INSERT INTO cx.window_aggregates (window_size_s, window_start, window_end, grouping, team, revision, version, nps_n, promoters, sign) "
            "VALUES (3600, '2026-11-01 10:00:00', '2026-11-01 11:00:00', 'team', 'billing', 11, 2, 10, 10, -1)"
        )
        readme = (ROOT / "docs" / "SEMANTICS.md").read_text()
        example = re.search(r"```sql\n(.*?)```", readme, re.S)
        assert example, "docs/SEMANTICS.md has no ```sql example"
        out = s.query(example.group(1), "CSV").bytes().decode().strip()
        # Version 4 wins under FINAL for the window's own row, the correction row (a late
        # event's revision 9) adds to it and the revision row (sign -1) takes ten promoters
        # out: NPS = 100*(6-2)/10 = 40, CSAT 75 %, AHT 500 s.
        fields = out.split(",")
        assert fields[2] == "40" and fields[4] == "75" and fields[5] == "500", out
        print(f"ok   docs/SEMANTICS.md example query -> {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - report any failure as a test failure
        print(f"FAIL {e}")
        sys.exit(1)
