"""Discord's JSON error codes that the relay answers with, and the error body builder."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    GENERAL = 0
    UNKNOWN_ACCOUNT = 10001
    UNKNOWN_APPLICATION = 10002
    UNKNOWN_CHANNEL = 10003
    UNKNOWN_GUILD = 10004
    UNKNOWN_INVITE = 10006
    UNKNOWN_MEMBER = 10007
    UNKNOWN_MESSAGE = 10008
    UNKNOWN_OVERWRITE = 10009
    UNKNOWN_ROLE = 10011
    UNKNOWN_TOKEN = 10012
    UNKNOWN_USER = 10013
    UNKNOWN_EMOJI = 10014
    UNKNOWN_SESSION = 10020
    UNKNOWN_BAN = 10026
    BOTS_CANNOT_USE = 20001
    SLOWMODE_RATE_LIMITED = 20016
    MAX_GUILDS = 30001
    MAX_REACTIONS = 30010
    MAX_ROLES = 30005
    MAX_CHANNELS = 30013
    MAX_PINS = 30003
    MAX_INVITES = 30016
    UNAUTHORIZED = 40001
    REQUEST_TOO_LARGE = 40005
    USERNAME_TAKEN = 40007
    TARGET_NOT_IN_VOICE = 40032
    ALREADY_BANNED = 40015  # not Discord's; Nexus keeps one code per distinct error
    MISSING_ACCESS = 50001
    INVALID_ACCOUNT_TYPE = 50002
    CANNOT_EXECUTE_ON_DM = 50003
    CANNOT_SEND_TO_USER = 50007
    UNKNOWN_DEVICE = 10030
    CANNOT_EDIT_OTHERS_MESSAGE = 50005
    EMPTY_MESSAGE = 50006
    INVALID_CHANNEL_TYPE = 50024
    INVALID_OAUTH_TOKEN = 50025
    MISSING_PERMISSIONS = 50013
    INVALID_FORM_BODY = 50035
    BULK_DELETE_TOO_OLD = 50034
    INVALID_PASSWORD = 50018
    INVITE_ACCEPTED_TO_OWN_GUILD = 50020
    CANNOT_DELETE_SYSTEM_ROLE = 50028
    CANNOT_LEAVE_OWNED_GUILD = 50055
    REACTION_BLOCKED = 90001


def field_errors(path: tuple[str | int, ...], code: str, message: str) -> dict[str, Any]:
    """Discord's nested ``errors`` object for one field, e.g. ``content._errors``."""
    leaf: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path):
        leaf = {str(part): leaf}
    return leaf


def merge_errors(target: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if key == "_errors":
            target.setdefault("_errors", []).extend(value)
        elif isinstance(value, dict):
            merge_errors(target.setdefault(key, {}), value)
    return target
