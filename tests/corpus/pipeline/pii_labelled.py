"""A labelled PII set (Chinese and English): each text with the PII it holds, as (type, exact
text); look-alikes (dates, order numbers, version strings, wrong check digits) hold none.
Used by test_pipeline_pii.py and tests/benchmarks/bench_pii.py (precision / recall)."""

from __future__ import annotations

LABELLED: list[tuple[str, list[tuple[str, str]]]] = [
    # emails
    ("Contact zhang.wei+news@mail.example.com.cn for details.", [("email", "zhang.wei+news@mail.example.com.cn")]),
    ("请发邮件到support@example.org，我们会尽快回复。", [("email", "support@example.org")]),
    ("Write to J.Smith@University.ac.uk or admin@test-site.io.", [("email", "J.Smith@University.ac.uk"), ("email", "admin@test-site.io")]),
    # Chinese mobile and landline
    ("请拨打13812345678联系张先生。", [("phone", "13812345678")]),
    ("手机：+86 139 1234 5678（工作日）", [("phone", "+86 139 1234 5678")]),
    ("客服电话 010-62751234 转 8001。", [("phone", "010-62751234")]),
    ("深圳办公室：(0755)26712345", [("phone", "(0755)26712345")]),
    ("Call 86-15900001111 or 0571-88886666-123 after 9am.", [("phone", "86-15900001111"), ("phone", "0571-88886666-123")]),
    # international and North American forms
    ("Our London office: +44 20 7946 0958.", [("phone", "+44 20 7946 0958")]),
    ("Call us at +1 (415) 555-0132 or (415) 555-0199.", [("phone", "+1 (415) 555-0132"), ("phone", "(415) 555-0199")]),
    ("Fax 212-555-0147 any time.", [("phone", "212-555-0147")]),
    # resident identity numbers (checksums valid)
    ("身份证号：11010519491231002X，请核对。", [("id_number", "11010519491231002X")]),
    ("ID 440306199003071232 was verified.", [("id_number", "440306199003071232")]),
    ("证件号码320102198511154562已登记", [("id_number", "320102198511154562")]),
    # bank cards (Luhn valid)
    ("银行卡号 6222 0202 0011 2345 679 已绑定。", [("bank_card", "6222 0202 0011 2345 679")]),
    ("Card 4111-1111-1111-1111 expires 12/28.", [("bank_card", "4111-1111-1111-1111")]),
    ("卡号621483001234567896", [("bank_card", "621483001234567896")]),
    ("Paid with 5400000000000005 yesterday.", [("bank_card", "5400000000000005")]),
    # IP addresses
    ("The server at 192.168.1.20 answered; the gateway is 10.0.0.1.", [("ip", "192.168.1.20"), ("ip", "10.0.0.1")]),
    ("服务器地址为202.112.0.36，端口8080。", [("ip", "202.112.0.36")]),
    ("IPv6: 2001:db8:85a3::8a2e:370:7334 and fe80::1ff:fe23:4567:890a.", [("ip", "2001:db8:85a3::8a2e:370:7334"), ("ip", "fe80::1ff:fe23:4567:890a")]),
    ("Full form 2001:0db8:0000:0000:0000:ff00:0042:8329 here.", [("ip", "2001:0db8:0000:0000:0000:ff00:0042:8329")]),
    # several kinds in one document
    ("联系人王芳，电话18612345678，邮箱wangfang@example.cn，身份证440306199003071232。",
     [("phone", "18612345678"), ("email", "wangfang@example.cn"), ("id_number", "440306199003071232")]),
    # look-alikes: none of these is PII
    ("会议定于2023-11-25 14:30:00举行，2023.11.25签到。", []),
    ("订单号 2023112512345678 已发货，物流单号 SF1234567890123。", []),
    ("Order #20231125-0001 shipped on 11/25/2023.", []),
    ("Upgrade to version 1.2.3 or numpy==1.26.4; v2.0.0.1 is beta, version 10.0.0.1 too.", []),
    ("身份证号校验失败：110105194912310021", []),
    ("Card number 6222020200112345670 failed the check.", []),
    ("ISBN 978-7-111-54742-6, price ¥1,299.00, pi is 3.14159.", []),
    ("Address 999.1.1.1 is not valid, nor is 192.168.1.", []),
    ("Time 12:30:45 and ratio 16:9; C++ std::vector<int> and a::b.", []),
    ("Login as user@localhost or ping @zhangsan on the forum.", []),
    ("人口为1412000000人，GDP增长5.2%，编号00123456789。", []),
    ("Room 1203, Building 5, 88 Keyuan Road; postcode 518057.", []),
]
