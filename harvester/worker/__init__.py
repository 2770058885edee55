"""The daemon: claims work, runs it through sources, imaging and storage, records outcomes."""
