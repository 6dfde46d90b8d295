"""store/schema.py: a database made before a column existed gets it (add_missing_columns)."""

import sqlalchemy

from lambdalet.store.schema import make_engine


def test_an_older_async_events_table_gets_the_trace_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sqlalchemy.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE async_events (request_id VARCHAR(64) PRIMARY KEY, function_name "
                             "VARCHAR(64) NOT NULL, qualifier VARCHAR(128), invoked_arn VARCHAR(256) NOT NULL, "
                             "payload BLOB NOT NULL, enqueued_at FLOAT NOT NULL, attempts INTEGER NOT NULL, "
                             "next_attempt_at FLOAT NOT NULL, claimed INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO async_events VALUES ('r', 'f', NULL, 'arn', x'7b7d', 1.0, 0, 1.0, 0)")
    old.dispose()
    engine = make_engine(url)
    columns = {c["name"] for c in sqlalchemy.inspect(engine).get_columns("async_events")}
    assert "trace" in columns
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT request_id, trace FROM async_events").fetchall() == [("r", None)]
    make_engine(url)  # a second start finds nothing to add
