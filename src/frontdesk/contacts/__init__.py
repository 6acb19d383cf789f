"""Contacts (the customers), their identities per channel, and companies."""
