"""Reading the books: effects and records streamed line by line, bad lines counted, not fatal."""

from __future__ import annotations

from loadkit.rehearsal.ledger import parse_effects, parse_records

EFFECT = (
    b'{"seq":1,"method":"alipay.user.alipaypoint.send","app_id":"APP","biz_no":"p-1",'
    b'"user_id":"2088000000000001","campaign":"JFB1","amount":300,"unit":"points","id":"PNT1","at":1.5}\n'
)
RECORD = (
    b'{"grant_id":7,"kind":"points","method":"alipay.user.alipaypoint.send","campaign":"JFB1","biz_no":"p-1",'
    b'"user_id":"2088000000000001","amount":100,"status":"granted","platform_id":"PNT1","code":null,'
    b'"attempts":2,"created_at":1.0,"updated_at":1.2}\n'
)


def test_effects_of_one_app_and_bad_lines_counted():
    other = EFFECT.replace(b'"APP"', b'"OTHER"')
    lines = [EFFECT, other, b"\n", b"not json\n", b"[1]\n", b'{"biz_no": "x"}\n']
    effects, bad = parse_effects(lines, "APP")
    assert [(e.biz_no, e.user_id, e.campaign, e.id) for e in effects] == [
        ("p-1", "2088000000000001", "JFB1", "PNT1")
    ]
    assert bad == 3
    assert len(parse_effects(lines)[0]) == 2


def test_effects_of_an_app_and_a_wechat_merchant():
    wechat = (
        b'{"seq":2,"method":"wechat.coupon.send","app_id":"1900000001","biz_no":"1900000001X",'
        b'"user_id":"oAbc","campaign":"9856000","amount":1,"unit":"coupon","id":"77","at":2.0}\n'
    )
    lines = [EFFECT, EFFECT.replace(b'"APP"', b'"OTHER"'), wechat]
    effects, bad = parse_effects(lines, ("APP", "1900000001"))
    assert [(e.method, e.app_id) for e in effects] == [
        ("alipay.user.alipaypoint.send", "APP"),
        ("wechat.coupon.send", "1900000001"),
    ]
    assert bad == 0 and len(parse_effects(lines, "1900000001")[0]) == 1


def test_records_typed_and_checked():
    lines = [
        RECORD,
        RECORD.replace(b'"granted"', b'"weird"'),
        b"{}\n",
        RECORD.replace(b'"attempts":2', b'"attempts":"x"'),
    ]
    records, bad = parse_records(lines)
    assert bad == 2
    assert records[0].grant_id == "7" and records[0].attempts == 2 and records[0].status == "granted"
    assert records[1].attempts == 0
