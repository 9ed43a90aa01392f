import datetime as dt
import re

import pytest

from classifier import knowledge
from conftest import SHARED

D = dt.date


def test_label_set_matches_taxonomy():
    taxonomy = SHARED / "taxonomy.md"
    if not taxonomy.exists():
        pytest.skip("shared/taxonomy.md not present")
    text = taxonomy.read_text("utf-8")
    ids = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M)
    assert sorted(ids) == sorted(knowledge.labels())
    precedence = re.search(r"^(fraud > .*?other)$", text, flags=re.M | re.S).group(1)
    assert [p.strip() for p in precedence.replace("\n", " ").split(">")] == list(knowledge.labels())


@pytest.mark.parametrize("label", knowledge.labels())
def test_every_label_is_complete(label):
    entry = knowledge.info(label)
    assert entry.name and entry.definition and entry.rule and entry.penalty and entry.evidence_window
    assert entry.severity in {"high", "medium", "low"}
    assert 3 <= len(entry.advice) <= 6
    assert entry.advice_basis in {"source", "general"}
    assert entry.complaint_window.event in {"order_placed", "trade_success", "trade_closed", "any_time", "not_stated"}
    if entry.complaint_window.event in knowledge.WINDOW_EVENTS:
        assert entry.complaint_window.days == 15


def test_source_facts():
    assert "48分" in knowledge.info("fraud").penalty
    assert "6分" in knowledge.info("privacy_leak").penalty
    counterfeit = knowledge.info("counterfeit").penalty
    for points in ("48分", "24分", "12分", "每件扣2分"):
        assert points in counterfeit
    assert knowledge.info("privacy_leak").complaint_window.event == "any_time"
    assert knowledge.info("late_shipment").complaint_window.event == "trade_closed"
    assert knowledge.info("not_as_described").complaint_window.event == "trade_success"
    assert knowledge.info("harassment").article87 is not None
    assert knowledge.info("quality_defect").penalty == knowledge.NOT_STATED


def test_unknown_label_names_the_valid_ids():
    with pytest.raises(KeyError, match="late_shipment"):
        knowledge.info("nope")


@pytest.mark.parametrize(
    "today, is_open",
    [(D(2026, 12, 5), True), (D(2026, 12, 6), False), (D(2026, 11, 20), True)],
)
def test_deadline_boundaries(today, is_open):
    deadline = knowledge.complaint_deadline("not_as_described", trade_success=D(2026, 11, 20), today=today)
    assert deadline.last_day == D(2026, 12, 5)
    assert deadline.is_open is is_open


def test_deadline_uses_the_event_the_rule_names():
    deadline = knowledge.complaint_deadline(
        "late_shipment", order_placed=D(2026, 1, 1), trade_closed=D(2026, 2, 1), today=D(2026, 2, 10))
    assert deadline.event_date == D(2026, 2, 1) and deadline.last_day == D(2026, 2, 16)
    assert "2026-02-16" in deadline.describe()


def test_deadline_without_date_or_window():
    assert knowledge.complaint_deadline("late_shipment", today=D(2026, 1, 1)).is_open is None
    assert knowledge.complaint_deadline("privacy_leak", today=D(2030, 1, 1)).is_open is True
    assert knowledge.complaint_deadline("quality_defect", trade_success=D(2020, 1, 1)).is_open is None
