"""API shapes of push subscriptions (the browser's PushSubscription.toJSON())."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from frontdesk.core.inputs import InputModel


class PushKeys(InputModel):
    p256dh: str = Field(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_\-=]+$",
                        description="the browser's P-256 public key, base64url")
    auth: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_\-=]+$",
                      description="the browser's authentication secret, base64url")


class PushSubscriptionIn(InputModel):
    endpoint: str = Field(min_length=10, max_length=2048,
                          description="the push service URL the browser was given (https)")
    keys: PushKeys
    expirationTime: int | None = Field(default=None, description="ignored; browsers send it")
    user_agent: str = Field(default="", max_length=300)


class PushSubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint: str
    user_agent: str
    created_at: datetime
    last_sent_at: datetime | None
    failures: int
    last_error: str | None


class PushPublicKey(BaseModel):
    public_key: str = Field(description="the server's VAPID key: applicationServerKey")
