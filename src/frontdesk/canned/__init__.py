"""Canned responses: saved replies agents insert by typing `/shortcut` in the composer."""
