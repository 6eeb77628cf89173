"""Script that ``hooks/run.sh`` runs for the plugin's launch modes (see :mod:`mcp_server.plugin`).

It is started as ``python -I -S .../mcp_server/plugin_entry.py MODE`` on any
Python 3.11+ interpreter, before the plugin's venv exists, so it puts the
plugin root on ``sys.path`` itself and imports only standard-library code.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mcp_server.plugin.launch import main  # noqa: E402

sys.exit(main())
