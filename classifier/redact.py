"""Mask personal data in message text before it is written out (``label --redact``).

Masks mainland phone numbers, ID-card numbers, e-mail addresses, address-like strings
(province / city / district down to street, building and room) and the name after
收件人 / 收货人 / 联系人.
"""
from __future__ import annotations

import re

_RULES = [
    (re.compile(r"(?<![0-9])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9])"), "[身份证号]"),
    (re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])"), "[电话]"),
    (re.compile(r"(?<![0-9])0[0-9]{2,3}-?[0-9]{7,8}(?![0-9])"), "[电话]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[邮箱]"),
    (re.compile(r"((?:收件人|收货人|联系人|姓名)\s*[:：]?\s*)[\u4e00-\u9fff·]{2,4}"), r"\1[姓名]"),
    (re.compile(
        r"[\u4e00-\u9fff]{2,8}(?:省|自治区|市)[\u4e00-\u9fff0-9]{0,12}(?:市|区|县|镇|乡)"
        r"[\u4e00-\u9fff0-9A-Za-z\-]{0,30}?(?:路|街|道|巷|村|小区|大厦|花园|苑)"
        r"(?:[0-9A-Za-z\-]+(?:号|栋|幢|楼|单元|室|层))*"
    ), "[地址]"),
    (re.compile(r"[\u4e00-\u9fff]{1,12}(?:路|街|巷)[0-9]+号(?:[0-9A-Za-z\-]+(?:栋|幢|楼|单元|室|层))*"), "[地址]"),
]


def redact(text: str) -> str:
    """``text`` with personal data replaced by bracketed placeholders such as ``[电话]``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
