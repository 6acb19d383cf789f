"""Workspaces, users, memberships with roles, teams and API tokens."""
