"""Everything that leaves the stream: the ClickHouse store and alert delivery."""
