"""harvester: a resumable daemon that builds geo-tagged image datasets."""

from __future__ import annotations

__version__ = "0.1.0"
