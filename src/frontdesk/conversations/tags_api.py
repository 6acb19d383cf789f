"""Tag vocabulary routes: usage for everyone, renaming and deleting for admins. Tags are
named by name in paths, as on conversations (`DELETE /conversations/{id}/tags/{tag}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from frontdesk.accounts.auth import AdminPrincipal, CurrentPrincipal
from frontdesk.conversations import tags
from frontdesk.core.deps import DbSession
from frontdesk.core.inputs import InputModel

router = APIRouter(tags=["conversations"])

TagName = Annotated[str, Path(min_length=1, max_length=100, description="the tag's name")]


class TagUsageOut(BaseModel):
    name: str
    conversations: int = Field(description="how many conversations carry it")


class TagUsagePage(BaseModel):
    items: list[TagUsageOut]


class TagRename(InputModel):
    name: str = Field(min_length=1, max_length=100,
                      description="the new name; an existing tag's name merges the two")


def _out(usage: tags.TagUsage) -> TagUsageOut:
    return TagUsageOut(name=usage.name, conversations=usage.conversations)


@router.get("/tags/usage", response_model=TagUsagePage)
async def tag_usage(db: DbSession, principal: CurrentPrincipal) -> TagUsagePage:
    """Every tag of the workspace with the number of conversations carrying it."""
    return TagUsagePage(items=[_out(u) for u in await tags.list_tag_usage(db, principal)])


@router.patch("/tags/{tag}", response_model=TagUsageOut)
async def rename_tag(
    tag: TagName, body: TagRename, db: DbSession, principal: AdminPrincipal
) -> TagUsageOut:
    return _out(await tags.rename_tag(db, principal, tag, body.name))


@router.delete("/tags/{tag}", status_code=204, response_class=Response)
async def delete_tag(tag: TagName, db: DbSession, principal: AdminPrincipal) -> Response:
    """Removes the tag from every conversation that carries it."""
    await tags.delete_tag(db, principal, tag)
    return Response(status_code=204)
