"""The documentation a newcomer follows: every relative link and image in the README and docs/
points at a file that exists, and every guide is reachable from the README."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_and_images_point_at_files(document):
    targets = [t for t in LINK.findall(document.read_text()) if not t.startswith(("http://", "https://", "mailto:"))]
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"


def test_every_guide_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    guides = sorted((ROOT / "docs" / "guides").glob("*.md"))
    assert guides
    assert [g.name for g in guides if f"docs/guides/{g.name}" not in readme] == []
