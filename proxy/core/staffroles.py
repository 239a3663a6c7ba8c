"""Staff roles of the admin console and what each may do (issue #20).

Contract: ``ROLE_PERMISSIONS`` is the one table of who may do what; ``Principal`` is a signed-in
person or API key (its role and, for ``library-staff``, the member libraries it is scoped to);
``Principal.may(permission)`` and ``Principal.sees(library)`` are the only checks the shell
makes. Pure: no I/O.
Not here: which route needs which permission (web/admin/app.py ``ROUTE_PERMISSIONS``), how a
principal is authenticated (web/admin/auth.py), where accounts are kept (stores/staff.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

Role = Literal["consortium-admin", "rules-editor", "library-staff", "auditor"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

Permission = Literal[
    "view",  # the console itself, vendor rules, one's own libraries' statistics
    "view_consortium",  # consortium-wide figures: every library, sessions, suspensions, health
    "audit",  # read the audit log
    "reload",  # reload the vendor rules (and the link builder, issue 17)
    "suspend",  # suspend or end patron sessions (by keyed hash)
    "block",  # answer an abuse report: block a card behind a pseudonym (scoped: own libraries)
    "lockouts",  # see and clear login lockouts of one's libraries
    "staff",  # manage staff accounts and API keys
]

_READ: Final = frozenset[Permission]({"view", "view_consortium", "audit"})
# Least privilege per job (issue #20): an auditor reads everything and changes nothing; a
# library's staff see their own library only; a rules editor manages rules, not patrons.
ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "consortium-admin": frozenset(get_args(Permission)),
    "rules-editor": frozenset({"view", "view_consortium", "reload"}),
    # Login lockouts are counted under keyed hashes that name no library, so library staff
    # cannot be shown only theirs: lockouts stay with consortium staff for now.
    "library-staff": frozenset({"view", "block"}),  # abuse reports: own cards only
    "auditor": _READ,
}
SCOPED_ROLES: Final = frozenset[Role]({"library-staff"})  # must name one or more libraries


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a staff account or an API key, with its role and library scope.

    ``libraries`` is empty for roles that see every library.
    """

    name: str
    role: Role
    libraries: frozenset[str] = frozenset()

    def may(self, permission: Permission) -> bool:
        """Whether the role grants ``permission``."""
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def scoped(self) -> bool:
        """True when only some libraries are visible."""
        return self.role in SCOPED_ROLES

    def sees(self, library: str) -> bool:
        """Whether this principal may see figures of ``library``."""
        return not self.scoped or library in self.libraries


def check_scope(role: Role, libraries: Iterable[str]) -> str | None:
    """Why a role/library combination is invalid, or None when it is fine."""
    libs = tuple(libraries)
    if role in SCOPED_ROLES and not libs:
        return f"role {role} needs at least one --library"
    if role not in SCOPED_ROLES and libs:
        return f"role {role} sees every library; --library is only for library-staff"
    return None
