"""The label set, its platform rules and handling advice, and complaint deadlines.

Everything comes from ``knowledge.toml`` in this package: one source of truth for the
label ids (in the taxonomy's order of precedence), their Chinese names, the rule each
maps to and the advice for the service team.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

NOT_STATED = "平台规则未规定"
SEVERITY_NAMES = {"high": "高", "medium": "中", "low": "低"}
WINDOW_EVENTS = {
    "order_placed": "买家拍下",
    "trade_success": "交易成功",
    "trade_closed": "交易关闭",
}


@dataclass(frozen=True)
class ComplaintWindow:
    """How long a buyer has to complain: ``days`` after ``event``, any time, or not stated."""

    event: str
    days: int
    note: str

    def describe(self) -> str:
        """The window in Chinese, e.g. ``交易成功后15天内``."""
        if self.event == "any_time":
            return "可随时投诉"
        if self.event in WINDOW_EVENTS:
            return f"{WINDOW_EVENTS[self.event]}后{self.days}天内"
        return self.note


@dataclass(frozen=True)
class LabelInfo:
    """Everything the knowledge base holds about one label."""

    id: str
    name: str
    severity: str
    definition: str
    rule: str
    penalty: str
    complaint_window: ComplaintWindow
    evidence_window: str
    article87: str | None
    advice: tuple[str, ...]
    advice_basis: str

    @property
    def severity_name(self) -> str:
        """The severity in Chinese (高 / 中 / 低)."""
        return SEVERITY_NAMES[self.severity]

    @property
    def has_rule(self) -> bool:
        """Whether the platform rules name a rule for this label."""
        return not self.rule.startswith(NOT_STATED)

    def advice_text(self) -> str:
        """The handling steps as one numbered line."""
        return " ".join(f"{i}. {step}" for i, step in enumerate(self.advice, 1))


@dataclass(frozen=True)
class Deadline:
    """Whether a complaint window is still open on ``today``."""

    label: str
    window: ComplaintWindow
    event_date: dt.date | None
    last_day: dt.date | None
    is_open: bool | None
    today: dt.date

    def describe(self) -> str:
        """A one-line Chinese summary of the deadline."""
        if self.window.event == "any_time":
            return "可随时投诉，不受期限限制"
        if self.window.event not in WINDOW_EVENTS:
            return self.window.note.rstrip("。")
        if self.last_day is None:
            event = WINDOW_EVENTS[self.window.event]
            return f"{self.window.describe()}；未提供{event}日期，无法计算截止日"
        days_left = (self.last_day - self.today).days
        state = ("今天是最后一天，仍可投诉" if days_left == 0 else f"仍可投诉，还剩{days_left}天" if self.is_open
                 else f"已超过投诉期限{-days_left}天")
        return f"{self.window.describe()}，最后一天 {self.last_day.isoformat()}：{state}"


@lru_cache(maxsize=1)
def _load() -> dict:
    text = resources.files("classifier").joinpath("knowledge.toml").read_text("utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def _entries() -> dict[str, LabelInfo]:
    data = _load()
    entries = {}
    for raw in data["labels"]:
        window = raw["complaint_window"]
        entries[raw["id"]] = LabelInfo(
            id=raw["id"],
            name=raw["name"],
            severity=raw["severity"],
            definition=raw["definition"],
            rule=raw["rule"],
            penalty=raw["penalty"],
            complaint_window=ComplaintWindow(window["event"], window["days"], window["note"]),
            evidence_window=raw["evidence_window"],
            article87=data["article87"] if raw["article87"] else None,
            advice=tuple(raw["advice"]),
            advice_basis=raw["advice_basis"],
        )
    return entries


def labels() -> tuple[str, ...]:
    """The 17 label ids, most serious first (the taxonomy's order of precedence)."""
    return tuple(_entries())


def info(label: str) -> LabelInfo:
    """The knowledge-base entry of ``label`` (an id such as ``late_shipment`` or its Chinese name
    such as ``延迟发货``); ``KeyError`` names the valid ids."""
    entries = _entries()
    if label in entries:
        return entries[label]
    by_name = {entry.name: entry for entry in entries.values()}
    by_name.update({part: entry for entry in entries.values() for part in entry.name.split("/")})
    if label in by_name:
        return by_name[label]
    raise KeyError(f"unknown label {label!r}; expected one of: {', '.join(labels())} "
                   f"(or a Chinese name such as {entries['late_shipment'].name})")


def complaint_deadline(
    label: str,
    *,
    order_placed: dt.date | None = None,
    trade_success: dt.date | None = None,
    trade_closed: dt.date | None = None,
    today: dt.date | None = None,
) -> Deadline:
    """Say whether the complaint window for ``label`` is still open on ``today``.

    The window counts from the event the rule names (article 85); the last day is the
    event date plus the window's days. Dates the rule does not use are ignored.
    """
    window = info(label).complaint_window
    today = today or dt.date.today()
    event_date = {
        "order_placed": order_placed,
        "trade_success": trade_success,
        "trade_closed": trade_closed,
    }.get(window.event)
    if window.event == "any_time":
        return Deadline(label, window, None, None, True, today)
    if event_date is None:
        return Deadline(label, window, None, None, None, today)
    last_day = event_date + dt.timedelta(days=window.days)
    return Deadline(label, window, event_date, last_day, today <= last_day, today)
