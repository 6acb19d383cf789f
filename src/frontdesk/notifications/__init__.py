"""Notifications to agents outside the open page: Web Push to their browsers and phones
(the installed PWA) when a conversation is assigned to them."""
