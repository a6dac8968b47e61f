"""Pure rules: plain functions of (state, event, now) with no Faust, ClickHouse, env or clock."""
