"""`python -m harvester.emulator`: the same as `harvester emulator`."""

from __future__ import annotations

import sys

from harvester.emulator.server import main

sys.exit(main())
