"""Accessibility checks with the vendored axe-core (tests/assets/axe).

The portal's Content Security Policy allows no inline script, so `page.add_script_tag()` (an
inline <script>) would be refused. axe is evaluated through the DevTools protocol instead, which
CSP does not govern; the page itself keeps its real policy, so a template that starts relying on
inline script still breaks these tests.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

AXE_PATH = Path(__file__).resolve().parents[1] / "assets" / "axe" / "axe.min.js"
# What fails a test. "moderate" and "minor" findings are not reported.
FAILING_IMPACTS = ("serious", "critical")


# Runs axe in the page and returns its violations as plain data.
RUN_AXE = """async () => {
    const results = await axe.run(document, {resultTypes: ["violations"]});
    return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        helpUrl: v.helpUrl,
        nodes: v.nodes.map((n) => ({
            target: n.target.map(String).join(" "),
            html: n.html,
            summary: n.failureSummary || "",
        })),
    }));
}"""


@cache
def axe_source() -> str:
    return AXE_PATH.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict]:
    """axe's violations on the page as it is now (WCAG 2.x A/AA and best practices)."""
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            if not page.evaluate("() => typeof window.axe === 'object'"):
                page.evaluate(axe_source())
            return page.evaluate(RUN_AXE)
        except PlaywrightError:
            # htmx swapped part of the page (a self-refreshing panel) while axe walked it.
            if attempt == attempts:
                raise
    return []


def serious_violations(page: Page) -> list[dict]:
    return [v for v in axe_violations(page) if v["impact"] in FAILING_IMPACTS]


def describe(violations: list[dict], where: str) -> str:
    """The violations as a person reads them: rule, impact, then every element and why."""
    lines = [f"{len(violations)} serious or critical accessibility violation(s) on {where}:"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"    at {node['target']}")
            lines.append(f"       {node['html'][:200]}")
            for reason in node["summary"].splitlines():
                lines.append(f"       {reason}")
    return "\n".join(lines)
