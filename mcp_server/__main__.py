"""``python -m mcp_server`` runs the eventsync CLI (the MCP server entry uses ``-m mcp_server serve``)."""

from mcp_server.cli import main

raise SystemExit(main())
