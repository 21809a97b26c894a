"""The fastest existing Python path, for comparison: connectorx reads PostgreSQL into Arrow,
the deltalake package writes or merges the Delta table.

Usage: python peer.py full URL TABLE_PATH
       python peer.py merge URL TABLE_PATH WATERMARK   (rows with updated_at > WATERMARK)
"""

import sys

import connectorx as cx
from deltalake import DeltaTable, write_deltalake

mode, url, path = sys.argv[1:4]
if mode == "full":
    table = cx.read_sql(url, "SELECT * FROM bench", return_type="arrow")
    write_deltalake(path, table, mode="overwrite")
elif mode == "merge":
    changes = cx.read_sql(
        url, f"SELECT * FROM bench WHERE updated_at > '{sys.argv[4]}'", return_type="arrow"
    )
    (
        DeltaTable(path)
        .merge(source=changes, predicate="t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
else:
    sys.exit(__doc__)
