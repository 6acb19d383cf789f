"""Outbound webhooks: subscriptions, signing, and delivery with retries."""
