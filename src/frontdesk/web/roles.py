"""Role checks of the web pages, matching the REST API's: a member without the role gets
the same 403 the API gives (a refusal page here), not a 404: the page exists, and hiding
that from a signed-in member of the workspace would hide nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from frontdesk.accounts.models import Role
from frontdesk.core.errors import Forbidden
from frontdesk.web.i18n import N_
from frontdesk.web.session import Agent, CurrentAgent


async def supervisor_agent(agent: CurrentAgent) -> Agent:
    if not agent.role.at_least(Role.SUPERVISOR):
        raise Forbidden(N_("This page is for supervisors and admins."))
    return agent


async def admin_agent(agent: CurrentAgent) -> Agent:
    if not agent.role.at_least(Role.ADMIN):
        raise Forbidden(N_("This page is for admins."))
    return agent


SupervisorAgent = Annotated[Agent, Depends(supervisor_agent)]
AdminAgent = Annotated[Agent, Depends(admin_agent)]
