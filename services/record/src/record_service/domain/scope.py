"""Data scope: which records of the tenant a principal may see and change.

admin: every record of the tenant; manager: records whose department_id is in
the principal's scope_departments (their subtree, resolved by the gateway);
sales: records they own. Anything else is reported as "not found".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_runtime.principal import Principal


@dataclass(frozen=True)
class DataScope:
    """A principal's scope as one predicate on a record's owner_id or department_id."""

    field: str | None  # None: no restriction (admin)
    values: tuple[str, ...] = ()

    @classmethod
    def of(cls, principal: Principal) -> DataScope:
        """The scope of `principal`'s role."""
        if principal.role == "admin":
            return cls(None)
        if principal.role == "manager":
            departments = set(principal.scope_departments)
            if principal.department_id:
                departments.add(principal.department_id)
            return cls("department_id", tuple(sorted(departments)))
        return cls("owner_id", (principal.user_id,))

    @property
    def unrestricted(self) -> bool:
        """True for admins."""
        return self.field is None

    def allows(self, doc: Mapping[str, Any]) -> bool:
        """True when the stored record is inside the scope."""
        if self.field is None:
            return True
        return doc.get(self.field) in self.values
