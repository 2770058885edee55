"""Where images live: deterministic shard paths and atomic writes."""
