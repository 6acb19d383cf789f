"""Imports every model module so that Base.metadata knows every table (for Alembic)."""

from frontdesk.accounts import models as accounts_models
from frontdesk.canned import models as canned_models
from frontdesk.channels import models as channels_models
from frontdesk.channels.email import imap_models
from frontdesk.channels.email import models as email_models
from frontdesk.contacts import models as contacts_models
from frontdesk.conversations import models as conversations_models
from frontdesk.core import activity, events
from frontdesk.db.base import Base
from frontdesk.inbox_views import models as inbox_views_models
from frontdesk.notifications import models as notifications_models
from frontdesk.webhooks import models as webhooks_models

__all__ = [
    "Base",
    "accounts_models",
    "activity",
    "canned_models",
    "channels_models",
    "contacts_models",
    "conversations_models",
    "email_models",
    "events",
    "imap_models",
    "inbox_views_models",
    "notifications_models",
    "webhooks_models",
]
