"""The README and docs/ stay true: the models table is the registry's, links resolve, nothing points outside."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted([README, *(REPO / "docs").rglob("*.md")])
# a markdown link or image target: ](path) or ](path "title"); code spans are removed first
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_code(text: str) -> str:
    """`text` without fenced code blocks and inline code spans, where `](…)` is not a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {slug(match) for match in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M)}


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_models_table_is_generated_from_the_registry():
    models_table = load_script("models_table")
    readme = README.read_text(encoding="utf-8")
    expected = models_table.replace_table(readme, models_table.table())
    assert readme == expected, "README.md's models table is stale: run python scripts/models_table.py"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
        elif not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(REPO)}: {', '.join(broken)}"


def test_nothing_points_at_files_outside_the_repository():
    names = ("DESIGN" + ".md", "STYLE" + ".md")  # split so this file does not match itself
    folders = [REPO / "docs", REPO / "src", REPO / "scripts", REPO / "experiments", REPO / "tests"]
    files = [README, *(path for folder in folders for path in folder.rglob("*") if path.suffix in {".md", ".py"})]
    found = [
        f"{path.relative_to(REPO)}: {name}"
        for path in files
        if path != Path(__file__).resolve()
        for name in names
        if name in path.read_text(encoding="utf-8")
    ]
    assert not found
    outside = re.compile(r"\.\./(?!shared/data)[\w.-]")  # ../shared/data is the data path; nothing else
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        relative = {target for target in LINK.findall(without_code(text)) if target.startswith("../")}
        for line in text.splitlines():
            for match in outside.finditer(line):
                rest = line[match.start() :]
                assert any(rest.startswith(target) for target in relative), f"{doc.relative_to(REPO)}: {line}"


def test_readme_test_command_is_the_ci_command():
    ci = [line for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines() if line.strip()]
    readme = README.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("python3 -m venv .venv") and line.endswith(ci[-1]) for line in readme)


def test_readme_terms_name_every_weights_folder():
    terms = README.read_text(encoding="utf-8").split("## Terms of the weights", 1)[1].split("\n## ", 1)[0]
    for folder in (REPO / "src" / "facemend" / "bundled", REPO / "weights"):
        item = re.search(rf"^- `{re.escape(str(folder.relative_to(REPO)))}/`[^:]*:(.*?)[;.]$", terms, flags=re.M | re.S)
        assert item, f"README's terms do not list {folder.relative_to(REPO)}/"
        named = set(re.findall(r"`([^`]+)`", item.group(1)))
        present = {path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith((".", "_"))}
        assert named == present, f"{folder.name}/: README names {sorted(named)}, the folder holds {sorted(present)}"
