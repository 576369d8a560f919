"""``python -m bird_model.monitor``: the monitor command, kept under the name docs/monitoring.md documents.

The command itself is :mod:`bird_model.monitoring.__main__`.
"""

import sys

from bird_model.monitoring.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
