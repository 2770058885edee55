"""HTTP endpoints of the daemon for operators and orchestrators."""
