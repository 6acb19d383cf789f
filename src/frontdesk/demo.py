"""The demo workspace `make run` starts with: a team of agents and customers writing in
English, Russian, Chinese and Arabic. Everything goes through the same services as the API."""

from __future__ import annotations

from sqlalchemy import select

from frontdesk.accounts.models import Role, Team
from frontdesk.accounts.service import Principal, add_team_member, create_team, create_user
from frontdesk.accounts.service import ensure_workspace as ensure
from frontdesk.channels.models import Inbox
from frontdesk.channels.service import create_inbox
from frontdesk.config import get_settings
from frontdesk.contacts.identities import ContactClaim, Identity
from frontdesk.contacts.models import IdentityKind
from frontdesk.contacts.notes import add_note
from frontdesk.contacts.tags import add_contact_tags
from frontdesk.conversations import service as conversations
from frontdesk.conversations.intake import InboundMessage, ingest_inbound
from frontdesk.conversations.models import ConversationStatus, Priority
from frontdesk.conversations.schemas import AssignIn, ConversationUpdate, ReplyIn, StatusIn
from frontdesk.db.engine import make_async_engine, make_sessionmaker, make_sync_engine

DEMO_PASSWORD = "frontdesk-demo"  # noqa: S105  (printed by `make run` on purpose)

USERS = [
    ("admin@demo.frontdesk.test", "Ada Admin", Role.ADMIN),
    ("sam@demo.frontdesk.test", "Sam Supervisor", Role.SUPERVISOR),
    ("anna@demo.frontdesk.test", "Anna Petrova", Role.AGENT),
    ("li@demo.frontdesk.test", "Li Wei", Role.AGENT),
    ("omar@demo.frontdesk.test", "Omar Haddad", Role.AGENT),
]
TEAMS = {"Billing": ["anna@demo.frontdesk.test"], "Technical": ["li@demo.frontdesk.test",
                                                                 "omar@demo.frontdesk.test"]}

# (customer id, name, e-mail, phone, messages, agent to assign, team, status, tags, priority)
CONVERSATIONS: list[tuple[str, str, str, str | None, list[str], str | None, str | None,
                          ConversationStatus, list[str], Priority]] = [
    ("cust-1001", "Emily Carter", "emily.carter@example.com", "+14155550123",
     ["Hi, I was charged twice for my March invoice. Can you refund one of them?",
      "Order number is INV-2291, in case that helps."],
     "anna@demo.frontdesk.test", "Billing", ConversationStatus.OPEN, ["billing", "refund"],
     Priority.HIGH),
    ("cust-1002", "Олег Смирнов", "oleg.smirnov@example.ru", "+79161234567",
     ["Здравствуйте! Не приходит код подтверждения по SMS, уже третий раз пробую.",
      "Номер телефона тот же, что в профиле."],
     "anna@demo.frontdesk.test", "Technical", ConversationStatus.OPEN, ["login"],
     Priority.MEDIUM),
    ("cust-1003", "王芳", "wang.fang@example.cn", "+8613800138000",
     ["你好，我的订单已经一周了还没有发货，请帮我查一下。"],
     "li@demo.frontdesk.test", "Technical", ConversationStatus.PENDING, ["shipping"],
     Priority.NONE),
    ("cust-1004", "فاطمة الزهراء", "fatima@example.sa", "+966501234567",
     ["مرحباً، أريد تغيير عنوان التوصيل لطلبي الأخير.", "الطلب رقم ٤٥٦٧"],
     None, None, ConversationStatus.OPEN, ["shipping"], Priority.LOW),
    ("cust-1005", "Lucas Martin", "lucas.martin@example.fr", None,
     ["Your app crashes when I open the settings page on Android 15."],
     "omar@demo.frontdesk.test", "Technical", ConversationStatus.OPEN, ["bug", "android"],
     Priority.URGENT),
    ("cust-1006", "Ирина Ковалёва", "irina.k@example.ru", None,
     ["Спасибо, проблема решена!"],
     "anna@demo.frontdesk.test", None, ConversationStatus.RESOLVED, [], Priority.NONE),
    ("cust-1007", "陈明", "chen.ming@example.cn", None,
     ["请问你们支持开具增值税专用发票吗？"],
     None, "Billing", ConversationStatus.OPEN, ["invoice"], Priority.NONE),
    ("cust-1008", "Ahmed Nasser", "ahmed.nasser@example.eg", "+201001234567",
     ["هل يمكنني الدفع عند الاستلام؟"],
     None, None, ConversationStatus.OPEN, ["payment"], Priority.NONE),
]

# The customers' own tags and what the team noted about them (customer id: tags, notes).
CONTACT_PROFILES: dict[str, tuple[list[str], list[tuple[str, str]]]] = {
    "cust-1001": (["vip"], [
        ("anna@demo.frontdesk.test", "Annual plan, renews in March. Prefers e-mail to calls."),
        ("sam@demo.frontdesk.test", "Second double charge this year: refund without asking."),
    ]),
    "cust-1002": (["churn-risk"], [
        ("anna@demo.frontdesk.test",
         "Третья жалоба на SMS-коды за месяц; предложили вход по почте."),
    ]),
    "cust-1004": (["vip"], [
        ("omar@demo.frontdesk.test", "تفضّل التواصل بالعربية وعبر البريد الإلكتروني."),
    ]),
}

REPLIES = {
    "cust-1001": "Thanks Emily, I can see the double charge. The refund is on its way (3–5 days).",
    "cust-1002": "Олег, проверьте, пожалуйста, не заблокированы ли короткие номера у оператора.",
    "cust-1003": "您好，我们已联系仓库，预计明天发货。",
}


async def seed_demo(workspace_name: str) -> str:
    url = get_settings().resolved_database_url()
    engine = make_async_engine(url)
    sync_engine = make_sync_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            ws = await ensure(session, workspace_name)
            users = {}
            for email, name, role in USERS:
                user, _ = await create_user(session, ws, email=email, role=role,
                                            password=DEMO_PASSWORD, name=name)
                users[email] = user.id
            admin = Principal(user_id=users[USERS[0][0]], workspace_id=ws.id, role=Role.ADMIN)
            teams = {}
            for team_name, members in TEAMS.items():
                existing = (await session.execute(select(Team).where(
                    Team.workspace_id == ws.id, Team.name == team_name))).scalar_one_or_none()
                the_team = existing or await create_team(session, admin, team_name)
                for member in members:
                    await add_team_member(session, admin, the_team.id, users[member])
                teams[team_name] = the_team.id
            inbox = (await session.execute(select(Inbox).where(
                Inbox.workspace_id == ws.id, Inbox.name == "Website API"))).scalar_one_or_none()
            if inbox is None:
                inbox = await create_inbox(session, admin, name="Website API", channel="api")
            await session.commit()
            inbox_id = inbox.id

        results = {}
        with sync_engine.connect() as conn, conn.begin():
            for ext, name, email, phone, texts, *_ in CONVERSATIONS:
                for n, text in enumerate(texts):
                    results[ext] = ingest_inbound(conn, InboundMessage(
                        workspace_id=ws.id, inbox_id=inbox_id, external_id=f"demo-{ext}-{n}",
                        contact=ContactClaim(name=name, email=email, phone=phone, external_ids=[
                            Identity(IdentityKind.EXTERNAL, ext, "api")]),
                        content=text))

        async with make_sessionmaker(engine)() as session:
            for ext, _, _, _, _, agent, team, status, tags, priority in CONVERSATIONS:
                result = results[ext]
                if not result.created:
                    continue  # the demo was seeded before: leave what people changed
                cid = result.conversation_id
                await conversations.assign_conversation(session, admin, cid, AssignIn(
                    assignee_id=users[agent] if agent else None,
                    team_id=teams[team] if team else None))
                if ext in REPLIES and agent:
                    agent_principal = Principal(users[agent], ws.id, Role.AGENT)
                    await conversations.reply_to_conversation(
                        session, agent_principal, cid, ReplyIn(content=REPLIES[ext]))
                if tags:
                    await conversations.add_tags(session, admin, cid, tags)
                if priority is not Priority.NONE:
                    await conversations.update_conversation(
                        session, admin, cid, ConversationUpdate(priority=priority))
                if status is not ConversationStatus.OPEN:
                    await conversations.change_status(session, admin, cid, StatusIn(status=status))
                if ext in CONTACT_PROFILES:
                    contact_tags, notes = CONTACT_PROFILES[ext]
                    await add_contact_tags(session, admin, result.contact_id, contact_tags)
                    for author, note in notes:
                        await add_note(session, Principal(users[author], ws.id, Role.AGENT),
                                       result.contact_id, note)
            await session.commit()
        return (f"{len(USERS)} users, {len(TEAMS)} teams, 1 API inbox (id {inbox_id}), "
                f"{len(CONVERSATIONS)} conversations")
    finally:
        await engine.dispose()
        sync_engine.dispose()
