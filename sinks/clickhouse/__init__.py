"""ClickHouse store: one URL chooses chDB (embedded, default) or a ClickHouse server."""
