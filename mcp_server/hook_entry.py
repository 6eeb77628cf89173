"""Script run by Claude Code for every captured tool call (see ``eventsync init``).

It is started as ``python -I -S .../mcp_server/hook_entry.py``: ``-S`` skips
``site`` (about 12 ms in a venv with many packages), so this file puts the
folder containing the package on ``sys.path`` itself before importing the
stdlib-only capture code. ``-I`` leaves the script's own folder off the path.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mcp_server.capture.hook import main  # noqa: E402

sys.exit(main())
