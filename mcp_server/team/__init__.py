"""Team mode: several machines share one project's events through NATS JetStream.

Each machine keeps its own SQLite log as the source of its queries; the
:class:`Relay` publishes the events captured here to the organisation's
stream and stores the other machines' events locally, marking their origin so
nothing echoes back. :class:`TeamSettings` reads where the stream is and who
this machine is from the environment. Importing this package loads the NATS
client, so only team-mode code paths import it.
"""

from mcp_server.team.relay import Relay, RelayStatistics
from mcp_server.team.settings import Credentials, TeamSettings, jetstream_available

__all__ = ["Credentials", "Relay", "RelayStatistics", "TeamSettings", "jetstream_available"]
