"""Message catalogues in zh-CN (default) and en, shared by the services' error modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_runtime.errors import FieldError, ValidationFailed

DEFAULT_LOCALE = "zh-CN"


class Catalog:
    """Localised message templates keyed by rule, e.g. {"not_found": {"zh-CN": "…{ref}", "en": "…{ref}"}}."""

    def __init__(self, messages: Mapping[str, Mapping[str, str]]) -> None:
        self.messages = messages

    def message(self, rule: str, locale: str = DEFAULT_LOCALE, **params: Any) -> str:
        """The text of `rule` in `locale` (zh-CN when unknown), params filled in; the rule itself if unlisted."""
        texts = self.messages.get(rule)
        if texts is None:
            return rule
        template = texts.get(locale) or texts[DEFAULT_LOCALE]
        try:
            return template.format(**params)
        except (KeyError, IndexError):
            return template

    def field_error(self, where: str, rule: str, locale: str = DEFAULT_LOCALE, **params: Any) -> FieldError:
        """A FieldError on `where` with its message in `locale`."""
        return FieldError(where, rule, self.message(rule, locale, **params), dict(params))

    def invalid(self, where: str, rule: str, locale: str = DEFAULT_LOCALE, **params: Any) -> ValidationFailed:
        """A 422 with one field error on `where`."""
        return ValidationFailed([self.field_error(where, rule, locale, **params)])
