"""Channels: inboxes and one adapter per channel. Only code in here knows a protocol."""
