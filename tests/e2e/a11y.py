"""axe-core in the page: every rule that applies, zero violations.

axe-core (Deque's rules engine, pinned in tests/e2e/package.json and
installed by scripts/test) is evaluated through the DevTools protocol, so the
page's Content-Security-Policy, which refuses inline scripts, stays on.
"""

from pathlib import Path

from playwright.sync_api import Page

AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"

RUN = """
async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + n.failureSummary),
  }));
}
"""


def violations(page: Page) -> list[dict]:
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: scripts/test installs it (npm ci in tests/e2e)")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    return page.evaluate(RUN)


def assert_accessible(page: Page, state: str) -> None:
    """No axe-core violation in the page as it is now (`state` names it in the failure)."""
    found = violations(page)
    report = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"]) for v in found
    )
    assert not found, f"axe-core, {state}:\n{report}"
