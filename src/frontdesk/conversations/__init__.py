"""Conversations, messages, tags: one model of a conversation for every channel."""
