"""Modules on the bus: projections that keep derived state in step with the log.

Each module owns one concern, declares the event types it subscribes to and
emits, and keeps its state in tables of the log's database so it can be
rebuilt by replaying the log:

* :mod:`.touchpoints` extracts ``@touchpoint`` annotations into an index;
* :mod:`.search` keeps a full-text index of touchpoints;
* :mod:`.context` caches ``get_context`` answers and drops them when a file they include changes.
"""
