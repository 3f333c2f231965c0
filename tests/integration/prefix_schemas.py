"""Dropping every schema of a test prefix: neurofit's and the lab schemas activated beside it."""


def drop_prefix_schemas(prefix: str) -> None:
    """Drop ``prefix``'s schemas, neurofit's last: MariaDB refuses to drop one that others reference."""
    import datajoint as dj

    connection = dj.conn()
    listing = "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s"
    names = [row[0] for row in connection.query(listing, args=(prefix.replace("_", "\\_") + "%",)).fetchall()]
    for name in sorted(names, key=lambda name: name == f"{prefix}neurofit"):
        connection.query(connection.adapter.drop_schema_sql(name))
