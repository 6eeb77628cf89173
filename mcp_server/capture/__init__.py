"""Capture: turning Claude Code hook payloads into events.

``payloads`` translates one hook payload into event dictionaries, ``hook`` is
the process entry point that stores them in the inbox, and ``redact`` keeps
secrets out of recorded shell commands. Standard library only, because the
hook imports this package on every tool call.
"""
