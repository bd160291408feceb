"""The users the record service knows: a replica of the gateway's users, fed by `user.*` events.

Owners must exist, be active and belong to the caller's tenant, and a record's
`department_id` (its scope) is its owner's department; both come from here.
`store/directory.py` keeps the replica in `crm_record.directory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DirectoryUser:
    """One user as the replica knows them."""

    tenant_id: str
    user_id: str
    department_id: str = ""
    active: bool = True
    name: str = ""


class Directory(Protocol):
    """Look-ups in the user replica."""

    def user(self, tenant_id: str, user_id: str) -> DirectoryUser | None:
        """The user of this tenant, or None when the replica has never heard of them."""
        ...


class EmptyDirectory:
    """A directory that knows nobody (a deployment or test without the replica): only self-owned records."""

    def user(self, tenant_id: str, user_id: str) -> DirectoryUser | None:
        """Nobody is known."""
        return None
