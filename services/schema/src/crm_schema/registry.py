"""The field types: one FieldType per name, with its value rule and what filters it supports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_schema import values as v
from crm_schema.values import Coercer

TEXT_OPS = frozenset({"eq", "ne", "in", "nin", "contains", "starts_with", "empty", "not_empty"})
RANGE_OPS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "nin", "empty", "not_empty"})
CHOICE_OPS = frozenset({"eq", "ne", "in", "nin", "empty", "not_empty"})
LIST_OPS = frozenset({"contains", "in", "nin", "all", "empty", "not_empty"})
BOOL_OPS = frozenset({"eq", "ne", "empty", "not_empty"})
PRESENCE_OPS = frozenset({"empty", "not_empty"})
ALL_OPS = TEXT_OPS | RANGE_OPS | LIST_OPS


@dataclass(frozen=True)
class FieldType:
    """One field type of the form engine.

    system: describes a record's own system attribute (never in `data`);
    computed: its value is produced by the platform (formula, lookup, ...), never by input;
    stored: its value lives in the record's `data`.
    """

    name: str
    label: dict[str, str]
    category: str
    coerce: Coercer | None = None
    ops: frozenset[str] = CHOICE_OPS
    system: bool = False
    computed: bool = False
    stored: bool = True
    filterable_default: bool = False
    searchable: bool = False
    unique_allowed: bool = True

    def to_json(self) -> dict[str, Any]:
        """The catalogue entry for ListFieldTypes."""
        return {
            "name": self.name,
            "label": dict(self.label),
            "category": self.category,
            "system": self.system,
            "computed": self.computed,
            "stored": self.stored,
            "filterable_default": self.filterable_default,
            # may be part of keyword search (a field's `searchable`), and is unless the field says otherwise
            "searchable": self.name in SEARCHABLE_TYPES,
            "searchable_default": self.name in SEARCHED_BY_DEFAULT,
            "unique_allowed": self.unique_allowed,
            "operators": sorted(self.ops),
            **({"value_range": dict(VALUE_RANGES[self.name])} if self.name in VALUE_RANGES else {}),
        }


SEARCHABLE_TYPES = frozenset({"text", "long_text", "mobile", "phone", "email", "tags", "auto_number", "id_card",
                              "uscc", "select", "multi_select", "stage", "region", "address", "url"})  # fmt: skip
# searched unless the field says `searchable: false`: what people type to find a customer (name, number,
# phone, e-mail); the others (remarks, addresses, links, option labels, which filters cover) only with
# `searchable: true`. Every searched word is index entries of the record, written with it.
SEARCHED_BY_DEFAULT = frozenset({"text", "mobile", "phone", "email", "tags", "auto_number", "id_card", "uscc"})

# The accepted values of the number-like and calendar types (as text, so that no JSON
# reader rounds them); everything outside is refused with the rule "number_range" or
# "date_range". Money is in yuan.
VALUE_RANGES: dict[str, dict[str, str]] = {
    **dict.fromkeys(("number", "integer", "percent", "rollup"), v.NUMBER_RANGE),
    "money": v.MONEY_RANGE,
    "date": v.DATE_RANGE,
    **dict.fromkeys(("datetime", "created_at", "updated_at", "last_activity_at"), v.DATETIME_RANGE),
}


def _t(name: str, zh: str, en: str, category: str, coerce: Coercer | None, ops: frozenset[str], **kw: Any) -> FieldType:
    return FieldType(name=name, label={"zh-CN": zh, "en": en}, category=category, coerce=coerce, ops=ops, **kw)


_TYPES = [
    # basic
    _t("text", "单行文本", "Text", "basic", v.coerce_text, TEXT_OPS, searchable=True),
    _t("long_text", "多行文本", "Long text", "basic", v.coerce_long_text, TEXT_OPS, searchable=True),
    _t(
        "rich_text",
        "富文本",
        "Rich text",
        "basic",
        v.coerce_rich_text,
        PRESENCE_OPS | {"contains"},
        unique_allowed=False,
    ),
    _t("number", "数字", "Number", "basic", v.coerce_number, RANGE_OPS),
    _t("integer", "整数", "Integer", "basic", v.coerce_integer, RANGE_OPS),
    _t("money", "金额", "Money (CNY)", "basic", v.coerce_money, RANGE_OPS),
    _t("percent", "百分比", "Percent", "basic", v.coerce_percent, RANGE_OPS),
    _t("rating", "评分", "Rating", "basic", v.coerce_rating, RANGE_OPS, unique_allowed=False),
    _t("boolean", "是/否", "Yes/No", "basic", v.coerce_boolean, BOOL_OPS, unique_allowed=False),
    _t("date", "日期", "Date", "basic", v.coerce_date, RANGE_OPS),
    _t("datetime", "日期时间", "Date and time", "basic", v.coerce_datetime, RANGE_OPS),
    _t("time", "时间", "Time", "basic", v.coerce_time, RANGE_OPS),
    _t("color", "颜色", "Colour", "basic", v.coerce_color, CHOICE_OPS, unique_allowed=False),
    # choices
    _t(
        "select", "单选", "Select", "choice", v.coerce_select, CHOICE_OPS, filterable_default=True, unique_allowed=False
    ),
    _t("multi_select", "多选", "Multi-select", "choice", v.coerce_multi_select, LIST_OPS, unique_allowed=False),
    _t("tags", "标签", "Tags", "choice", v.coerce_tags, LIST_OPS, searchable=True, unique_allowed=False),
    _t("stage", "阶段", "Stage", "choice", v.coerce_select, CHOICE_OPS, filterable_default=True, unique_allowed=False),
    # contact
    _t("mobile", "手机号", "Mobile", "contact", v.coerce_mobile, TEXT_OPS, searchable=True),
    _t("phone", "电话", "Phone", "contact", v.coerce_phone, TEXT_OPS, searchable=True),
    _t("email", "邮箱", "Email", "contact", v.coerce_email, TEXT_OPS, searchable=True),
    _t("url", "网址", "URL", "contact", v.coerce_url, TEXT_OPS),
    _t("region", "地区", "Region", "contact", v.coerce_region, CHOICE_OPS, searchable=True, unique_allowed=False),
    _t(
        "address",
        "地址",
        "Address",
        "contact",
        v.coerce_address,
        PRESENCE_OPS | {"eq", "ne", "in", "nin", "contains"},
        searchable=True,
        unique_allowed=False,
    ),
    _t("geo_point", "地理位置", "Location", "contact", v.coerce_geo_point, PRESENCE_OPS, unique_allowed=False),
    # identity numbers
    _t("id_card", "身份证号", "Resident ID card", "identity", v.coerce_id_card, CHOICE_OPS, searchable=True),
    _t(
        "uscc", "统一社会信用代码", "Unified social credit code", "identity", v.coerce_uscc, CHOICE_OPS, searchable=True
    ),
    # organisation
    _t(
        "user", "成员", "User", "organisation", v.coerce_user, CHOICE_OPS, filterable_default=True, unique_allowed=False
    ),
    _t(
        "department",
        "部门",
        "Department",
        "organisation",
        v.coerce_user,
        CHOICE_OPS,
        filterable_default=True,
        unique_allowed=False,
    ),
    # relations
    _t(
        "relation",
        "关联记录",
        "Relation",
        "relation",
        v.coerce_relation,
        CHOICE_OPS,
        filterable_default=True,
        unique_allowed=False,
    ),
    _t("sub_table", "子表", "Sub-table", "relation", None, PRESENCE_OPS, unique_allowed=False),
    _t("lookup", "引用字段", "Lookup", "relation", None, CHOICE_OPS, computed=True, unique_allowed=False),
    _t("rollup", "汇总", "Rollup", "relation", v.coerce_number, RANGE_OPS, computed=True, unique_allowed=False),
    # files
    _t("attachment", "附件", "Attachment", "file", v.coerce_attachment, PRESENCE_OPS, unique_allowed=False),
    _t("image", "图片", "Image", "file", v.coerce_attachment, PRESENCE_OPS, unique_allowed=False),
    # advanced
    _t(
        "auto_number",
        "自动编号",
        "Auto number",
        "advanced",
        v.coerce_text,
        TEXT_OPS,
        computed=True,
        searchable=True,
        filterable_default=True,
    ),
    _t("formula", "公式", "Formula", "advanced", None, RANGE_OPS | TEXT_OPS, computed=True, unique_allowed=False),
    _t(
        "encrypted_text",
        "加密文本",
        "Encrypted text",
        "advanced",
        v.coerce_encrypted_text,
        PRESENCE_OPS,
        unique_allowed=False,
    ),
    _t(
        "approval_status",
        "审批状态",
        "Approval status",
        "advanced",
        v.coerce_approval_status,
        CHOICE_OPS,
        computed=True,
        filterable_default=True,
        unique_allowed=False,
    ),
    # system attributes of every record (not in `data`)
    _t(
        "owner",
        "负责人",
        "Owner",
        "system",
        v.coerce_user,
        CHOICE_OPS,
        system=True,
        stored=False,
        filterable_default=True,
        unique_allowed=False,
    ),
    _t(
        "created_by",
        "创建人",
        "Created by",
        "system",
        v.coerce_user,
        CHOICE_OPS,
        system=True,
        stored=False,
        filterable_default=True,
        unique_allowed=False,
    ),
    _t(
        "created_at",
        "创建时间",
        "Created at",
        "system",
        v.coerce_datetime,
        RANGE_OPS,
        system=True,
        stored=False,
        filterable_default=True,
        unique_allowed=False,
    ),
    _t(
        "updated_by",
        "修改人",
        "Updated by",
        "system",
        v.coerce_user,
        CHOICE_OPS,
        system=True,
        stored=False,
        unique_allowed=False,
    ),
    _t(
        "updated_at",
        "修改时间",
        "Updated at",
        "system",
        v.coerce_datetime,
        RANGE_OPS,
        system=True,
        stored=False,
        filterable_default=True,
        unique_allowed=False,
    ),
    _t(
        "last_activity_at",
        "最后跟进时间",
        "Last activity at",
        "system",
        v.coerce_datetime,
        RANGE_OPS,
        system=True,
        stored=False,
        filterable_default=True,
        unique_allowed=False,
    ),
    _t(
        "department_system",
        "所属部门",
        "Department",
        "system",
        v.coerce_user,
        CHOICE_OPS,
        system=True,
        stored=False,
        filterable_default=True,
        unique_allowed=False,
    ),
]

FIELD_TYPES: dict[str, FieldType] = {t.name: t for t in _TYPES}

# Types whose value the user (or an import) may write.
INPUT_TYPES = frozenset(t.name for t in _TYPES if not t.system and not t.computed)

# Names that belong to the record envelope, never to `data`.
SYSTEM_FIELD_NAMES = frozenset(
    {
        "owner_id", "owner", "created_by", "created_at", "updated_at", "updated_by", "version", "tenant_id",
        "id", "_id", "form_id", "form_version", "deleted", "deleted_at", "last_activity_at", "department_id",
    }
)  # fmt: skip


def field_types_catalogue() -> list[dict[str, Any]]:
    """The JSON-able catalogue of every field type, for ListFieldTypes."""
    return [t.to_json() for t in _TYPES]
