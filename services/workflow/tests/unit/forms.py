"""Small published forms for the workflow's unit tests (the shape FormService.GetPublishedForm returns)."""

from __future__ import annotations

from typing import Any

from workflow_service.domain.definitions import FormInfo


def _label(zh: str, en: str) -> dict[str, str]:
    return {"zh-CN": zh, "en": en}


def _options(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"value": v, "label": _label(zh, v)} for v, zh in pairs]


CUSTOMER = FormInfo(
    id="f-customer",
    key="customer",
    name="客户",
    version=1,
    fields={
        "customer_name": {"key": "customer_name", "type": "text", "label": _label("客户名称", "Customer name")},
        "source": {
            "key": "source",
            "type": "select",
            "label": _label("客户来源", "Source"),
            "options": _options(("website", "官网"), ("exhibition", "展会")),
        },
        "level": {
            "key": "level",
            "type": "select",
            "label": _label("客户分级", "Level"),
            "options": _options(("A", "A"), ("B", "B")),
        },
        "region": {"key": "region", "type": "region", "label": _label("所在地区", "Region")},
        "last_contacted_at": {
            "key": "last_contacted_at",
            "type": "datetime",
            "label": _label("最后联系时间", "Last contacted"),
        },
        "first_contacted_on": {
            "key": "first_contacted_on",
            "type": "date",
            "label": _label("首次联系日期", "First contact"),
        },
        "amount": {"key": "amount", "type": "money", "label": _label("金额", "Amount")},
    },
)
FOLLOW_UP = FormInfo(
    id="f-follow",
    key="follow_up",
    name="跟进记录",
    version=1,
    fields={
        "customer": {
            "key": "customer",
            "type": "relation",
            "label": _label("客户", "Customer"),
            "relation": {"form_id": "customer", "many": False},
        },
        "followed_at": {"key": "followed_at", "type": "datetime", "label": _label("跟进时间", "Followed at")},
        "next_visit_at": {"key": "next_visit_at", "type": "datetime", "label": _label("下次回访时间", "Next visit")},
        "summary": {"key": "summary", "type": "long_text", "label": _label("内容摘要", "Summary")},
    },
)
TASK = FormInfo(
    id="f-task",
    key="task",
    name="销售任务",
    version=1,
    fields={
        "title": {"key": "title", "type": "text", "label": _label("任务标题", "Title")},
        "assignee": {"key": "assignee", "type": "user", "label": _label("负责人", "Assignee"), "filterable": True},
        "customer": {
            "key": "customer",
            "type": "relation",
            "label": _label("关联客户", "Customer"),
            "relation": {"form_id": "customer", "many": False},
        },
        "due_at": {"key": "due_at", "type": "datetime", "label": _label("截止日期", "Due at")},
    },
)
OPPORTUNITY = FormInfo(
    id="f-opp",
    key="opportunity",
    name="商机",
    version=1,
    fields={
        "name": {"key": "name", "type": "text", "label": _label("商机名称", "Name")},
        "customer": {
            "key": "customer",
            "type": "relation",
            "label": _label("客户", "Customer"),
            "relation": {"form_id": "customer", "many": False},
        },
        "stage": {
            "key": "stage",
            "type": "stage",
            "label": _label("销售阶段", "Stage"),
            "options": _options(
                ("initial_contact", "初步沟通"), ("negotiation", "商务谈判"), ("won", "赢单"), ("lost", "输单")
            ),
        },
    },
)
CONTRACT = FormInfo(
    id="f-contract",
    key="contract",
    name="合同",
    version=1,
    fields={
        "contract_no": {"key": "contract_no", "type": "auto_number", "label": _label("合同编号", "Contract no.")},
        "customer": {
            "key": "customer",
            "type": "relation",
            "label": _label("客户", "Customer"),
            "relation": {"form_id": "customer", "many": False},
        },
        "amount": {"key": "amount", "type": "money", "label": _label("合同金额", "Amount")},
        "approval_status": {
            "key": "approval_status",
            "type": "approval_status",
            "label": _label("审批状态", "Approval status"),
        },
    },
)
QUOTATION = FormInfo(
    id="f-quotation",
    key="quotation",
    name="报价单",
    version=1,
    fields={
        "quote_no": {"key": "quote_no", "type": "auto_number", "label": _label("报价编号", "Quote no.")},
        "total": {"key": "total", "type": "money", "label": _label("报价总额", "Total")},
        "discount_rate": {"key": "discount_rate", "type": "percent", "label": _label("折扣率", "Discount rate")},
        "approval_status": {
            "key": "approval_status",
            "type": "approval_status",
            "label": _label("审批状态", "Approval status"),
        },
    },
)
_ALL = (CUSTOMER, FOLLOW_UP, TASK, OPPORTUNITY, CONTRACT, QUOTATION)
FORMS = {f.key: f for f in _ALL} | {f.id: f for f in _ALL}


class Lookup:
    """definitions.FormLookup (and, with a principal argument, FormPort) over the forms above."""

    def published(self, *args: Any) -> FormInfo | None:
        return FORMS.get(str(args[-1]))
