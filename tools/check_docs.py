#!/usr/bin/env python3
"""The docs stay true: run by ctest (label docs) and so by CI.

Checks, over every Markdown file of the repository:
  - every relative link and image resolves to a file or folder;
  - every chapter lesson (chapters/NN_name/README.md) has the course's sections, in order;
  - every repository path a lesson or HINTS.md names in `code` exists (build outputs aside),
    and every ctest label it names with -L is a label the build defines.
Prints one line per problem and exits 1 if there is any.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECTIONS = ["What you'll learn", "The idea", "The math", "Walkthrough", "The exercise",
            "Common mistakes", "Check your understanding", "Going further", "Measured results"]
TOP_DIRS = ("chapters/", "exercises/", "solutions/", "common/", "docs/", "cmake/", "tools/", ".ci/")
FIXED_LABELS = {"cpu", "gpu", "stubs", "sanitize", "tour", "known-bad", "docs", "common"}

problems = []


def markdown_files():
    skip = {"build", ".git", ".deps", ".tune"}
    for path in sorted(ROOT.rglob("*.md")):
        if not skip.intersection(path.relative_to(ROOT).parts):
            yield path


def chapter_labels():
    return {p.name[:2] for p in (ROOT / "chapters").iterdir() if p.is_dir() and p.name[:2].isdigit()}


def check_links(path, text):
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same page
        file_part = target.split("#")[0]
        if file_part and not (path.parent / file_part).exists():
            problems.append(f"{path.relative_to(ROOT)}: link to {target} does not resolve")


def check_sections(path, text):
    found = [h.strip() for h in re.findall(r"^## (.+)$", text, flags=re.M)]
    missing = [s for s in SECTIONS if s not in found]
    if missing:
        problems.append(f"{path.relative_to(ROOT)}: missing sections: {', '.join(missing)}")
    elif [s for s in found if s in SECTIONS] != SECTIONS:
        problems.append(f"{path.relative_to(ROOT)}: sections out of order (want: {', '.join(SECTIONS)})")


def check_named_things(path, text, labels):
    for code in re.findall(r"`([^`\n]+)`", text):
        for word in code.split():
            word = word.strip("'\",;:()")
            if word.startswith(TOP_DIRS) and not any(ch in word for ch in "*<>{}$") and "NN" not in word:
                if not (ROOT / word).exists():
                    problems.append(f"{path.relative_to(ROOT)}: names {word}, which does not exist")
        for label in re.findall(r"-L\s+([A-Za-z0-9_|-]+)", code):
            for part in label.split("|"):
                if part not in labels:
                    problems.append(f"{path.relative_to(ROOT)}: names ctest label {part}, which the build does not define")


def main():
    labels = FIXED_LABELS | chapter_labels()
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        check_links(path, text)
        rel = path.relative_to(ROOT).as_posix()
        if re.fullmatch(r"chapters/\d\d_[^/]+/README\.md", rel):
            check_sections(path, text)
        if rel.startswith(("chapters/", "exercises/", "docs/")) or rel == "README.md":
            check_named_things(path, text, labels)
    for p in problems:
        print(p)
    print(f"docs: {len(problems)} problem(s) in {sum(1 for _ in markdown_files())} Markdown files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
