"""Integrations: delivering events to systems outside eventsync.

:mod:`.webhooks` POSTs matching events to configured HTTP endpoints, signed
with HMAC-SHA256, through an outbox table so a slow endpoint never delays the
modules.
"""
