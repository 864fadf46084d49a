"""One ordered set of SQL migrations for the whole database (``sql/NNNN_name.sql``)."""
