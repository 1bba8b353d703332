"""docs/grafana-dashboard.json and docs/prometheus-alerts.yml ask only for what the server exposes.

Each expression's metric names are checked against a real /metrics response
(histograms as `_bucket`/`_sum`/`_count`, counters as `_total`). PyYAML is not
a dependency, so the rules file is read by a small reader of the YAML it is
written in (block mappings and lists, quoted and folded scalars), which
refuses anything else.
"""

import json
import re

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

DOCS = settings.BASE_DIR / "docs"
# Names Prometheus or a blackbox probe of /readyz makes, not TeamChat.
EXTERNAL = {"up", "probe_success"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exposed_names() -> set[str]:
    Client().get("/readyz")  # the database pool exists once something used it
    response = Client().get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (labels, functions and keywords left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    tokens = re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\(?))", expr)
    return {
        t.group(0)
        for t in tokens
        if not t.group(1) and t.group(0).lower() not in PROMQL_WORDS and not t.group(0)[0] == "$"
    }


# --- a reader for the YAML subset the rules file is written in -----------------------


class YamlSubsetError(ValueError):
    pass


def read_yaml(text: str):
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw:
            raise YamlSubsetError(f"line {number}: tab")
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        lines.append([len(raw) - len(raw.lstrip()), raw.strip(), number])
    value, end = _block(lines, 0, 0)
    if end != len(lines):
        raise YamlSubsetError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _scalar(text: str, number: int):
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise YamlSubsetError(f"line {number}: bad quoted string") from exc
    if text.startswith(("'", "{", "[", "&", "*", "!", "|", ">", "%", "@", "`")):
        raise YamlSubsetError(f"line {number}: unsupported scalar {text!r}")
    return text


def _block(lines, i: int, indent: int):
    if i < len(lines) and lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            lines[i] = [indent + 2, lines[i][1][2:].lstrip(), lines[i][2]]
            item, i = _block(lines, i, indent + 2)
            items.append(item)
        return items, i
    mapping: dict = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        _, content, number = lines[i]
        key, sep, rest = content.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise YamlSubsetError(f"line {number}: expected `key: value`")
        if key in mapping:
            raise YamlSubsetError(f"line {number}: duplicate key {key}")
        rest = rest.strip()
        i += 1
        if rest in (">-", "|"):
            folded = []
            while i < len(lines) and lines[i][0] > indent:
                folded.append(lines[i][1])
                i += 1
            mapping[key] = (" " if rest == ">-" else "\n").join(folded)
        elif rest:
            mapping[key] = _scalar(rest, number)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            raise YamlSubsetError(f"line {number}: {key} has no value")
    return mapping, i


# --- the checks -----------------------------------------------------------------------


def alert_rules() -> list[dict]:
    document = read_yaml((DOCS / "prometheus-alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules
    return rules


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_alert_rules_are_well_formed():
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_the_yaml_reader_refuses_what_it_does_not_know():
    for bad in ("a: 1\n  b: 2\n", "a:\n", "a: [1, 2]\n", "a: 1\na: 2\n", "- a\n"):
        with pytest.raises(YamlSubsetError):
            read_yaml(bad)
    assert read_yaml('x:\n  - y: "q"\n    z: >-\n      one\n      two\n') == {
        "x": [{"y": "q", "z": "one two"}]
    }


def test_dashboard_and_alerts_read_only_metrics_the_server_exposes():
    exposed = exposed_names()
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    wanted = set().union(*(metric_names(expr) for expr in exprs))
    assert "teamchat_fanout_latency_seconds_bucket" in wanted  # the reader finds names
    unknown = sorted(wanted - exposed - EXTERNAL)
    assert not unknown, f"not in /metrics: {unknown}"
