"""The benchmark workload of issue #7: a 16-field customer form and deterministic records.

Shared by bench/run.py (the figures) and bench/locustfile.py (the mixed load).
Everything here is pure: the same seed gives the same rows, on any machine.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from typing import Any

CITIES = [
    ("北京市", "北京", "海淀区"),
    ("上海市", "上海", "浦东新区"),
    ("广东省", "广州", "天河区"),
    ("广东省", "深圳", "南山区"),
    ("浙江省", "杭州", "西湖区"),
    ("四川省", "成都", "高新区"),
    ("湖北省", "武汉", "洪山区"),
    ("江苏省", "南京", "鼓楼区"),
    ("江苏省", "苏州", "工业园区"),
    ("陕西省", "西安", "雁塔区"),
    ("天津市", "天津", "滨海新区"),
    ("重庆市", "重庆", "渝北区"),
]
WORDS = [
    "华信",
    "恒通",
    "东方",
    "金桥",
    "瑞丰",
    "博远",
    "天成",
    "宏达",
    "新元",
    "中科",
    "锦程",
    "汇智",
    "星辰",
    "九州",
    "海纳",
    "远航",
    "明德",
    "正泰",
    "安盛",
    "嘉禾",
    "鼎盛",
    "腾飞",
    "诚信",
    "联创",
    "凯旋",
    "永泰",
    "万达",
    "和润",
    "盈科",
    "信达",
    "华泰",
    "中联",
    "同创",
    "智云",
    "数联",
    "卓越",
    "盛世",
    "龙腾",
    "光大",
    "合众",
]
TRADES = ["科技", "贸易", "制造", "物流", "咨询", "软件", "电子", "医疗", "教育", "建设"]
SUFFIX = ["有限公司", "股份有限公司", "集团有限公司"]
STREETS = ["科技园路", "人民路", "中山路", "建设大道", "解放路", "长江路", "创业路", "滨江大道"]

LEVELS = ["A", "B", "C", "D"]
SOURCES = ["官网", "展会", "转介绍", "搜索引擎", "线上广告", "老客户介绍"]
INDUSTRIES = ["互联网/IT", "制造业", "金融", "教育", "医疗", "零售", "政府/公共事业", "其他"]
STATUSES = ["潜在", "跟进中", "已成交", "流失"]
TAGS = ["高意向", "技术型", "价格敏感", "大客户", "老客户"]
FOLLOW_UP_KINDS = ["电话", "拜访", "微信", "邮件"]

# Signed dates spread over ~5 years before the benchmark's fixed "today".
FIRST_DAY = date(2021, 12, 1)
SPAN_DAYS = 5 * 365
CST = timezone(timedelta(hours=8))

# The keywords searched (the first is the "华信").
KEYWORDS = ["华信", "恒通", "东方", "九州", "腾飞", "智云", "中联", "嘉禾"]


def _label(zh: str, en: str) -> dict[str, str]:
    return {"zh-CN": zh, "en": en}


def _options(values: list[str]) -> list[dict[str, Any]]:
    return [{"value": v, "label": _label(v, v)} for v in values]


def customer_fields() -> list[dict[str, Any]]:
    """The 16 fields of the benchmark's customer form (the filter and sort fields are filterable)."""
    return [
        {"key": "customer_name", "type": "text", "label": _label("客户名称", "Customer name"), "required": True},
        {"key": "mobile", "type": "mobile", "label": _label("手机号", "Mobile")},
        {"key": "email", "type": "email", "label": _label("邮箱", "Email")},
        {
            "key": "level",
            "type": "select",
            "label": _label("客户分级", "Level"),
            "options": _options(LEVELS),
            "filterable": True,
        },
        {
            "key": "source",
            "type": "select",
            "label": _label("客户来源", "Source"),
            "options": _options(SOURCES),
            "filterable": True,
        },
        {
            "key": "industry",
            "type": "select",
            "label": _label("所属行业", "Industry"),
            "options": _options(INDUSTRIES),
            "filterable": True,
        },
        {
            "key": "status",
            "type": "select",
            "label": _label("客户状态", "Status"),
            "options": _options(STATUSES),
            "filterable": True,
        },
        {"key": "signed_on", "type": "date", "label": _label("签订日期", "Signed on"), "filterable": True},
        {"key": "next_visit_at", "type": "datetime", "label": _label("下次回访时间", "Next visit"), "filterable": True},
        {"key": "annual_revenue", "type": "money", "label": _label("年营收", "Annual revenue")},
        {"key": "employees", "type": "integer", "label": _label("员工数", "Employees")},
        {"key": "address", "type": "text", "label": _label("地址", "Address"), "max_length": 500},
        {"key": "website", "type": "url", "label": _label("网址", "Website")},
        {"key": "tags", "type": "multi_select", "label": _label("标签", "Tags"), "options": _options(TAGS)},
        {"key": "is_key", "type": "boolean", "label": _label("是否重点", "Key account")},
        {"key": "remark", "type": "long_text", "label": _label("备注", "Remark"), "max_length": 5000},
    ]


def customer_form(key: str) -> dict[str, Any]:
    """The create-form body of the customer form."""
    return {
        "key": key,
        "name": _label("客户(基准)", "Customers (bench)"),
        "fields": customer_fields(),
        "title_field": "customer_name",
    }


def follow_up_form(key: str, customer_form_id: str) -> dict[str, Any]:
    """A follow-up form relating to the customers, so that the 360° view has related records."""
    return {
        "key": key,
        "name": _label("跟进记录(基准)", "Follow-ups (bench)"),
        "fields": [
            {"key": "subject", "type": "text", "label": _label("主题", "Subject"), "required": True},
            {
                "key": "customer",
                "type": "relation",
                "label": _label("客户", "Customer"),
                "relation": {"form_id": customer_form_id, "many": False},
                "filterable": True,
            },
            {
                "key": "kind",
                "type": "select",
                "label": _label("方式", "Kind"),
                "options": _options(FOLLOW_UP_KINDS),
            },
            {"key": "happened_at", "type": "datetime", "label": _label("跟进时间", "When")},
        ],
        "title_field": "subject",
    }


def company(i: int, rnd: random.Random) -> str:
    """A unique, realistic company name (unique by its number `i`)."""
    city = rnd.choice(CITIES)[1]
    return f"{city}{rnd.choice(WORDS)}{rnd.choice(WORDS)}{rnd.choice(TRADES)}{rnd.choice(SUFFIX)}{i}号"


def customer_row(i: int, rnd: random.Random) -> dict[str, Any]:
    """Customer number `i`: every one of the 16 fields filled, as an Excel import would."""
    province, city, district = rnd.choice(CITIES)
    signed = FIRST_DAY + timedelta(days=rnd.randrange(SPAN_DAYS))
    visit = datetime.combine(signed, datetime.min.time(), CST) + timedelta(
        days=rnd.randrange(1, 120), hours=rnd.randrange(9, 18), minutes=rnd.choice((0, 15, 30, 45))
    )
    return {
        "customer_name": company(i, rnd),
        "mobile": f"1{rnd.choice('3589')}{rnd.randrange(10**9):09d}",
        "email": f"contact{i}@corp{rnd.randrange(1000)}.cn",
        "level": LEVELS[i % len(LEVELS)],
        "source": rnd.choice(SOURCES),
        "industry": rnd.choice(INDUSTRIES),
        "status": rnd.choice(STATUSES),
        "signed_on": signed.isoformat(),
        "next_visit_at": visit.isoformat(),
        "annual_revenue": f"{rnd.randrange(10_000, 500_000_000) / 100:.2f}",
        "employees": rnd.randrange(5, 20_000),
        "address": f"{province}{city}市{district}{rnd.choice(STREETS)}{rnd.randrange(1, 999)}号",
        "website": f"https://www.corp{i}.cn",
        "tags": rnd.sample(TAGS, rnd.randrange(0, 3)),
        "is_key": rnd.random() < 0.2,
        "remark": f"{rnd.choice(['首次接洽', '需求确认', '报价中', '合同谈判', '售后回访'])}，{rnd.choice(TRADES)}方向，"
        f"联系人{rnd.choice('张王李赵刘陈杨黄周吴')}{rnd.choice(['经理', '总监', '主管', '总'])}。",
    }


def customer_rows(start: int, count: int, seed: int) -> list[dict[str, Any]]:
    """Customers start .. start+count-1, deterministic for (start, seed)."""
    rnd = random.Random(seed * 1_000_003 + start)
    return [customer_row(start + k, rnd) for k in range(count)]


def follow_up_row(customer_id: str, n: int, rnd: random.Random) -> dict[str, Any]:
    """Follow-up number `n` of a customer."""
    when = datetime.combine(FIRST_DAY, datetime.min.time(), CST) + timedelta(
        days=rnd.randrange(SPAN_DAYS), hours=rnd.randrange(9, 18)
    )
    return {
        "subject": f"第{n + 1}次{rnd.choice(FOLLOW_UP_KINDS)}跟进",
        "customer": customer_id,
        "kind": rnd.choice(FOLLOW_UP_KINDS),
        "happened_at": when.isoformat(),
    }


def level_filter(level: str) -> str:
    """The list filter "客户分级 = level" as the API's JSON filter tree."""
    return '{"and": [{"field": "level", "op": "eq", "value": "' + level + '"}]}'
