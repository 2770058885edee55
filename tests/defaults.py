"""The settings' defaults, for tests that call what the CLI calls with the operator's settings.

Production code has one home for a default (harvester/config.py); a test reads it there
rather than writing the number again.
"""

from __future__ import annotations

from harvester.config import Settings

MAX_ATTEMPTS: int = Settings.model_fields["max_attempts"].default
