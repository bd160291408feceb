"""Password hashing with argon2id (argon2-cffi) and the password policy.

Policy (`check_password`), applied wherever a person chooses a password
(user creation, a password change, an admin's reset, a new tenant's admin):

    too_short          fewer than 10 characters
    too_simple         fewer than 3 of the 4 classes (lower, upper, digit, symbol), unless 16+ characters
    contains_username  contains the username (case-insensitive, usernames of 3+ characters)
    breached           listed in data/breached-passwords.txt (common and breached passwords, case-insensitive)

A violation is a 422 `validation_failed` problem whose errors name the field
`password` and each broken rule, in the request's language.
"""

from __future__ import annotations

import functools
import secrets
import string
import threading
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from crm_runtime.errors import FieldError
from gateway.domain_errors import field_error, invalid
from gateway.i18n import t

MIN_LENGTH = 10
LONG_ENOUGH = 16  # a passphrase this long needs no character classes
MIN_CLASSES = 3
MIN_USERNAME_MATCH = 3  # "contains the username" is not tested for one- or two-letter usernames


# Each argon2 hash or verification holds `memory_kib` (64 MiB) while it runs: 26 request threads logging in
# at once took a gateway worker to 1 GB. At most this many run at once per process (the others wait their
# turn; with 2 cores more would not finish sooner), so a worker's memory for passwords stays under 256 MiB.
MAX_PARALLEL_HASHES = 4


class Passwords:
    """Hash and verify passwords; verifying an unknown user costs the same as a known one."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, max_parallel: int = MAX_PARALLEL_HASHES) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._slots = threading.BoundedSemaphore(max_parallel)
        # compared against when the user does not exist, so timing does not reveal usernames
        self._dummy = self._hasher.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        """An argon2id hash of `password`."""
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when `password` matches `stored_hash` (None: no such user, always False)."""
        try:
            with self._slots:
                self._hasher.verify(stored_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters."""
        return self._hasher.check_needs_rehash(stored_hash)


@functools.cache
def breached_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords, lower case."""
    text = resources.files("gateway").joinpath("data/breached-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _classes(password: str) -> int:
    lower = any(c.islower() for c in password)
    upper = any(c.isupper() for c in password)
    digit = any(c.isdigit() for c in password)
    symbol = any(not c.isalnum() for c in password)
    return lower + upper + digit + symbol


def password_violations(password: str, username: str = "") -> list[str]:
    """The policy rules `password` breaks (empty: acceptable), in a fixed order."""
    rules: list[str] = []
    if len(password) < MIN_LENGTH:
        rules.append("too_short")
    if len(password) < LONG_ENOUGH and _classes(password) < MIN_CLASSES:
        rules.append("too_simple")
    name = username.strip().lower()
    if len(name) >= MIN_USERNAME_MATCH and name in password.lower():
        rules.append("contains_username")
    if password.lower() in breached_passwords():
        rules.append("breached")
    return rules


def _rule_error(rule: str, locale: str | None, field: str) -> FieldError:
    params = {"min": MIN_LENGTH, "classes": MIN_CLASSES, "long": LONG_ENOUGH}
    return field_error(field, rule, t(f"password_{rule}", locale, **params), **params)


def check_password(password: str, username: str = "", locale: str | None = None, *, field: str = "password") -> None:
    """Raise a 422 `validation_failed` (errors on `field`, one per broken rule) unless `password` is acceptable."""
    rules = password_violations(password, username)
    if rules:
        errors = [_rule_error(rule, locale, field) for rule in rules]
        raise invalid(errors, t("password_policy", locale))


def generate_password(length: int = 16) -> str:
    """A random password that satisfies the policy (every class present, no ambiguous characters)."""
    lower = "abcdefghijkmnpqrstuvwxyz"
    upper = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    digits = "23456789"
    symbols = "-_.!@#%+="
    alphabet = lower + upper + digits + symbols
    rng = secrets.SystemRandom()
    while True:
        chars = [rng.choice(pool) for pool in (lower, upper, digits, symbols)]
        chars += [rng.choice(alphabet) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        candidate = "".join(chars)
        if not password_violations(candidate) and candidate[0] in string.ascii_letters:
            return candidate
