"""What a webhook message says, in each receiver's format, and how the signed kind is signed.

Pure functions: a `Notice` in, the JSON body out. Slack takes `text` (its notification line) and
`blocks`; Microsoft Teams takes a message with an Adaptive Card attachment, which both its
Workflows webhooks and the older connector webhooks accept; the signed kind takes the portal's
own JSON, signed as the Standard Webhooks specification says (https://www.standardwebhooks.com),
so that a receiver can check it with that specification's libraries or a few lines of its own
(docs/OPERATIONS.md#alerts-and-webhooks).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
# What a receiver should accept between the timestamp it is sent and its own clock.
REPLAY_WINDOW_SECONDS = 5 * 60
ADAPTIVE_CARD_VERSION = "1.4"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


@dataclass(frozen=True)
class Notice:
    """One alert, said once for every format.

    `event` names it for machines ("budget.alert", "account.frozen"…); `title` is one line,
    `text` a sentence or two; `link` the absolute address of the page to act on; `facts` label
    and value pairs; `data` what a program receiving the signed kind needs (ids, amounts)."""

    event: str
    title: str
    text: str
    link: str
    link_label: str
    facts: tuple[tuple[str, str], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


# --- Slack -----------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack reads these three as markup: &, < and > must be sent as entities.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, Any]:
    facts = "\n".join(f"*{_slack_escape(label)}:* {_slack_escape(value)}" for label, value in notice.facts)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150], "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(notice.text)}},
    ]
    if facts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts}})
    # A link, not a button: a button in an incoming webhook's message also posts to the app's
    # interactivity address, which an incoming webhook does not have.
    link = f"<{notice.link}|{_slack_escape(notice.link_label)}>"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    return {"text": f"{notice.title}: {notice.text}", "blocks": blocks}


# --- Microsoft Teams -------------------------------------------------------------------------------


def teams_payload(notice: Notice) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": notice.text, "wrap": True},
    ]
    if notice.facts:
        body.append({"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in notice.facts]})
    card = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": notice.link_label, "url": notice.link}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# --- Signed JSON -----------------------------------------------------------------------------------


def signed_payload(notice: Notice, *, created_at: str) -> dict[str, Any]:
    return {
        "type": notice.event,
        "timestamp": created_at,
        "data": {
            "title": notice.title,
            "text": notice.text,
            "url": notice.link,
            "facts": [{"label": label, "value": value} for label, value in notice.facts],
            **notice.data,
        },
    }


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `<message id>.<timestamp>.<body>`, keyed with the secret's
    bytes (the base64 after `whsec_`)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, *, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id=message_id, timestamp=timestamp, body=body),
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
