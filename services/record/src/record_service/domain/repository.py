"""The store as the domain sees it: the ports the use cases are written against.

    RecordRepository  records, uniques, counters, history pages; writes in one Transaction
    RecordQueries     ListRecords' pages and counts (store/planner.py decides how the store is asked)
    HistoryReader     the history of many records at once (the 360° timeline)
    FileStore         uploaded files (GridFS in store/attachments.py)
    Cipher            encryption of encrypted_text values

Implemented by store/ (pymongo) and, for unit tests, by tests/unit/fakes.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from record_service.domain.files import StoredFile
from record_service.domain.forms import FormSchema
from record_service.domain.query import AccessFilter, SortSpec

if TYPE_CHECKING:
    from record_service.domain.context import RecordContext

T = TypeVar("T")
Doc = dict[str, Any]


class UniqueTaken(Exception):
    """A unique key is already claimed by another record (raised inside a transaction, which then aborts)."""

    def __init__(self, key: str, position: int | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.position = position


class StaleVersion(Exception):
    """The record's version moved on (raised inside a transaction, which then aborts)."""


class Transaction(Protocol):
    """The writes allowed inside one store transaction; all or nothing."""

    def next_sequence(self, key: str, count: int = 1) -> int:
        """Increment the counter `key` by `count`; return its new value (gap-free: rolled back on abort)."""
        ...

    def claim_uniques(self, claims: Sequence[tuple[str, str]]) -> None:
        """Claim (unique key, record id) pairs; UniqueTaken(key, position) when one is held."""
        ...

    def release_uniques(self, keys: Sequence[str], record_id: str) -> None:
        """Release the keys held by `record_id` (keys held by others are left alone)."""
        ...

    def insert_records(self, docs: Sequence[Doc]) -> None:
        """Insert new record documents."""
        ...

    def update_record(self, record_id: str, expected_version: int, set_fields: Doc, unset: Sequence[str] = ()) -> None:
        """Update when the stored version is `expected_version`; StaleVersion otherwise."""
        ...

    def insert_history(self, docs: Sequence[Doc]) -> None:
        """Insert history entries (each is also an outbox entry)."""
        ...


class RecordRepository(Protocol):
    """Reads and transactional writes of records, history, uniques and counters."""

    def transaction(self, fn: Callable[[Transaction], T]) -> T:
        """Run `fn` in one transaction (retried on transient conflicts); its exceptions abort it."""
        ...

    def get(self, record_id: str) -> Doc | None:
        """A record by id (any tenant: the caller checks tenant and scope)."""
        ...

    def get_many(self, ids: Sequence[str], projection: Doc | None = None) -> list[Doc]:
        """Records by ids (chunked `$in`); any tenant, the caller filters."""
        ...

    def unique_holder(self, key: str) -> str | None:
        """The record id holding a unique key, or None."""
        ...

    def guards(self, tenant_id: str, form_id: str) -> list[Doc]:
        """The change guards kept on a form (domain/approval_gate.py)."""
        ...

    def pool(self, tenant_id: str, pool_id: str) -> Doc | None:
        """A public pool as replicated from the workflow service (domain/pool.py), or None."""
        ...

    def take_quota(self, key: str, limit: int) -> bool:
        """Count one more use of a quota (e.g. a user's claims today); False, counting nothing, at `limit`."""
        ...

    def replace_guards(self, tenant_id: str, form_id: str, owner: str, guards: Sequence[Doc]) -> None:
        """Replace the guards one owner (an approval process) keeps on a form."""
        ...

    def unique_holders(self, keys: Sequence[str]) -> dict[str, str]:
        """{key: record id} for the keys that are claimed (chunked reads by _id)."""
        ...

    def discard(self, record_ids: Sequence[str], history_ids: Sequence[str], unique_keys: Sequence[str]) -> None:
        """Compensate a failed multi-transaction bulk write: delete what its committed chunks wrote."""
        ...

    def reserve_order(self, tenant_id: str, form_id: str, count: int = 1) -> int:
        """Reserve `count` order numbers (`seq`) of a form; return the last. Outside any transaction: gaps are fine."""
        ...

    def last_order(self, tenant_id: str, form_id: str) -> int:
        """The highest order number handed out for the form (0 when none)."""
        ...

    def tally(self, tenant_id: str, form_id: str, deleted: bool, facets: Sequence[str] = ()) -> int | None:
        """The exact number of the form's live (deleted=False) or deleted records, kept as they are written
        (with `facets`: of those holding one of these values of a select or boolean field, query.facet);
        None when the store cannot tell without counting."""
        ...

    def value_bounds(self, tenant_id: str, form_id: str, key: str) -> tuple[Any, Any] | None:
        """The (lowest, highest) stored value a form field has had, as far as writes reported; None when unknown."""
        ...

    def widen_bounds(self, tenant_id: str, form_id: str, key: str, low: Any, high: Any) -> tuple[Any, Any]:
        """Widen a field's bounds to include [low, high] (atomic $min/$max); return the bounds now stored."""
        ...

    def return_sequence(self, key: str, last: int, count: int) -> bool:
        """Give back `count` numbers ending at `last` when nobody took a later one (keeps numbering gap-free)."""
        ...

    def release_held(self, hold: str) -> int:
        """Make outbox entries written with `published: hold` visible to the relay (published False)."""
        ...

    def find(
        self,
        predicate: Doc,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        batch_size: int = 0,
        projection: Doc | None = None,
    ) -> Iterator[Doc]:
        """Stream records matching an index-covered predicate."""
        ...

    def count(self, predicate: Doc, limit: int = 0) -> int:
        """Count records matching an index-covered predicate (up to `limit` when > 0)."""
        ...

    def history_page(self, tenant_id: str, record_id: str, before: datetime | None, limit: int) -> list[Doc]:
        """History entries of a record, newest first, `at` <= before (ties included)."""
        ...

    def ensure_form_indexes(self, form: FormSchema) -> None:
        """Indexes for the form's indexed fields (idempotent, cached)."""
        ...

    def holding_file(self, tenant_id: str, file_id: str, limit: int = 200) -> list[Doc]:
        """Records of the tenant (live or deleted) whose data holds an uploaded file (their `files`)."""
        ...


class ListPlan(Protocol):
    """A planned ListRecords query as the use case sees it: only its sort (for the next page's cursor)."""

    @property
    def sort(self) -> SortSpec:
        """The order of the page."""
        ...


class RecordQueries(Protocol):
    """Pages and counts of ListRecords: which condition the store runs and how a page is read is the store's."""

    def plan(
        self,
        form: FormSchema,
        tenant_id: str,
        *,
        ctx: RecordContext,
        access: AccessFilter | None,
        hidden: frozenset[str],
        keyword_text: Callable[[Mapping[str, Any]], str] | None,
        tree: Any,
        sort: Any,
        keyword: str,
        cursor: str,
        page_size: int,
        deleted: bool,
    ) -> Any:
        """Parse and plan a query (422 on a bad filter, sort, cursor or page size); the plan is a ListPlan."""
        ...

    def page(self, form: FormSchema, plan: Any) -> tuple[list[Doc], bool]:
        """The stored records of one page of a plan, and whether more follow."""
        ...

    def count(self, plan: Any, mode: str) -> tuple[int, bool]:
        """(total, capped) of a plan's matches (`mode`: query.COUNT_CAPPED, COUNT_EXACT or COUNT_NONE)."""
        ...

    def written(self, tenant_id: str, form: FormSchema, datas: Sequence[Mapping[str, Any]]) -> None:
        """Tell the query side which data values were just written (it sizes its read windows from them)."""
        ...


class HistoryReader(Protocol):
    """History entries of many records of one tenant."""

    def recent(self, tenant_id: str, record_ids: Sequence[str], limit: int) -> list[Doc]:
        """Up to `limit` entries of these records, newest first (envelopes left out)."""
        ...


class FileStore(Protocol):
    """Uploaded files of a tenant: put, look up, stream."""

    def put(self, tenant_id: str, uploaded_by: str, name: str, content_type: str, content: bytes) -> StoredFile:
        """Store the bytes; returns the stored metadata."""
        ...

    def get(self, tenant_id: str, file_id: str) -> StoredFile | None:
        """The file's metadata when it exists in this tenant."""
        ...

    def chunks(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes, chunk by chunk (check the tenant with `get` first)."""
        ...

    def lookup(self, tenant_id: str, ids: Sequence[str]) -> dict[str, Doc]:
        """{id: {id, name, size, content_type, uploaded_by}} for this tenant's ids (an AttachmentLookup)."""
        ...


class Cipher(Protocol):
    """Symmetric encryption of encrypted_text values."""

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext token."""
        ...

    def decrypt(self, token: str) -> str:
        """Plaintext; raises ValueError on a bad token."""
        ...


AttachmentLookup = Callable[[str, list[str]], dict[str, dict[str, Any]]]
"""(tenant id, attachment ids) -> {id: {id, name, size, content_type[, uploaded_by]}} for the ids that exist.

`uploaded_by` (optional) lets the service refuse someone else's unattached file; it is never stored."""


def no_attachments(tenant_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Attachment lookup used until an attachment store is plugged in: no id is known."""
    return {}
