"""Saved inbox views: a name for a set of conversation filters and a sort, personal or
shared with the whole workspace."""
