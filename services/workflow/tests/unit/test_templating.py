"""Templates fill an action's values from the triggering record."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.workflow.tests.unit.forms import CUSTOMER
from workflow_service.domain.templating import Scope, TemplateError, parse_duration, placeholders, render_value

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
RECORD = {
    "id": "r1",
    "owner_id": "u7",
    "data": {
        "customer_name": "华信恒通",
        "level": "A",
        "last_contacted_at": "2026-12-07T16:30:00.000Z",
        "region": {"province": "广东省", "city": "深圳市"},
    },
}
SCOPE = Scope(RECORD, CUSTOMER.fields, NOW, ZoneInfo("Asia/Shanghai"), ({"id": "t1"},))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("【新客户跟进】{客户名称}", "【新客户跟进】华信恒通"),
        ("{customer_name}/{Level}", "华信恒通/A"),
        ("{owner_id}", "u7"),
        ("{now+3d}", "2026-12-11T01:00:00.000Z"),
        ("{now-1h}", "2026-12-08T00:00:00.000Z"),
        ("{最后联系时间:date}", "2026-12-08"),  # 16:30 UTC is the next day in Shanghai
        ("{last_contacted_at+1d}", "2026-12-08T16:30:00.000Z"),
        ("联系于 {最后联系时间:time}", "联系于 2026-12-08 00:30"),
        ("{steps.0.id}", "t1"),
        ("{所在地区}", {"province": "广东省", "city": "深圳市"}),
        ("地区：{所在地区}", "地区：广东省深圳市"),
        ("{{literal}} {客户分级}", "{literal} A"),
        ("{首次联系日期}", None),
        (42, 42),
    ],
)
def test_render(template: object, expected: object) -> None:
    assert render_value(template, SCOPE) == expected


def test_durations_and_syntax() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("-1h") == -3600 and parse_duration("2w") == 14 * 86400
    assert parse_duration("soon") is None and parse_duration("1.5h") is None
    assert [p.name for p in placeholders("{a} and {b+1d:date}")] == ["a", "b"]
    with pytest.raises(TemplateError):
        placeholders("open { brace")
