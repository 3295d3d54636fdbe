"""Who may use the bot: allowlists of chats and users, and the admins.

An empty allowlist means open to all. When either list is set, an update is let
through if its user is an allowed user (anywhere, including private chats and
inline mode) or its chat is an allowed chat (for every member of that chat).
Admins are always let through, and only they may /reload and see /stats.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
    allowed_chats: frozenset[int] = frozenset()
    allowed_users: frozenset[int] = frozenset()
    admins: frozenset[int] = frozenset()

    @property
    def open(self) -> bool:
        return not self.allowed_chats and not self.allowed_users

    def allows(self, user_id: int | None, chat_id: int | None) -> bool:
        """May this user, in this chat (None for inline queries), use the bot?"""
        if self.open:
            return True
        if user_id is not None and (user_id in self.allowed_users or user_id in self.admins):
            return True
        return chat_id is not None and chat_id in self.allowed_chats

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admins
