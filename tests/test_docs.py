"""The documentation stays true to the checkout: its links lead somewhere, the paths and modules
it names exist, the README stays short, and the configuration reference lists exactly the
environment variables the settings read."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
CONFIGURATION = ROOT / "docs" / "configuration.md"
PACKAGES = ("bimride", "rides", "payments", "notifications", "devtools", "bench", "tests")
FOLDER_PREFIXES = tuple(f"{f}/" for f in (*PACKAGES, "deploy", "docs", "templates", ".ci"))

LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose(path: Path) -> str:
    """The page without its fenced code blocks: examples there may name what does not exist."""
    return FENCE.sub("", path.read_text())


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading (it keeps underscores: `JOB_RETRY_SCALE`)."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    for line in _prose(path).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            slug, n = _slug(match[1]), 1
            while slug in anchors:  # GitHub numbers a repeated heading: slug-1, slug-2
                slug, n = f"{_slug(match[1])}-{n}", n + 1
            anchors.add(slug)
    return anchors


def test_the_pages_are_found():
    assert {"README.md", "docs/architecture.md", "docs/configuration.md"} <= {
        _name(p) for p in DOCS
    }
    assert "the-layers" in _anchors(ROOT / "docs" / "architecture.md")
    assert _slug("Jobs that wait on providers: concurrency, snooze, keys, rate limits") == (
        "jobs-that-wait-on-providers-concurrency-snooze-keys-rate-limits"
    )
    assert _slug("The contract: `/api/schema/`") == "the-contract-apischema"
    assert _slug("`JOB_RETRY_SCALE` and *speed*") == "job_retry_scale-and-speed"


@pytest.mark.parametrize("page", DOCS, ids=_name)
def test_every_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # http://…, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no {path}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {_name(file)}")
    assert not broken, f"{_name(page)} links nowhere: {broken}"


def _named_paths(page: Path) -> set[str]:
    """Paths in the checkout a page names in code spans: `bimride/jobs/engine/runner.py`."""
    found = set()
    for span in CODE.findall(_prose(page)):
        for word in span.split():
            word = word.strip(",;:()'\"").split(":")[0]
            is_path = word.endswith("/") or "." in word.rsplit("/", 1)[-1]  # not `rides/1`
            if word.startswith(FOLDER_PREFIXES) and is_path and not re.search(r"[<>*…{}$]", word):
                found.add(word)
    return found


@pytest.mark.parametrize("page", DOCS, ids=_name)
def test_every_path_a_page_names_exists(page):
    missing = sorted(p for p in _named_paths(page) if not (ROOT / p).exists())
    assert not missing, f"{_name(page)} names paths the checkout does not have: {missing}"


def _defines(module: Path, name: str) -> bool:
    source = module.read_text()
    return bool(re.search(rf"^\s*(class|def|async def)\s+{name}\b|^\s*{name}\s*[:=]", source, re.M))


def _module_exists(dotted: str) -> bool:
    """`bimride.jobs.engine.runner` or `rides.events.RideCompleted`: a module, or a name that
    a module defines at its top level or in a class."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:n])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.exists():
            rest = parts[n:]
            return not rest or (len(rest) <= 2 and all(_defines(module, r) for r in rest))
    return False


@pytest.mark.parametrize("page", DOCS, ids=_name)
def test_every_module_a_page_names_exists(page):
    """Dotted names of three parts or more in our packages (two parts are job names:
    `payments.capture_payment`)."""
    named = {
        re.match(r"[\w.]*", word.lstrip("(")).group().rstrip(".")
        for span in CODE.findall(_prose(page))
        for word in span.split()
        if "/" not in word  # a file: `deploy/bimride.env.example`
    }
    modules = {
        w
        for w in named
        if w.split(".")[0] in PACKAGES
        and w.count(".") >= 2
        and not re.fullmatch(r"[A-Z]\d{3}", w.rsplit(".", 1)[-1])  # a check: `bimride.jobs.E001`
    }
    missing = sorted(m for m in modules if not _module_exists(m))
    assert not missing, f"{_name(page)} names modules the checkout does not have: {missing}"


def test_the_readme_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"the README has {len(lines)} lines; the rest belongs in docs/"


def _settings_variables() -> dict[str, str]:
    """Each environment variable bimride/settings reads, with where: `env.int("NAME", …)`,
    `env("NAME")`, `os.environ.get("NAME")`, `os.environ["NAME"]`, `os.getenv("NAME")`."""
    found = {}
    for module in sorted((ROOT / "bimride" / "settings").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            name = None
            if isinstance(node, ast.Call) and node.args:
                func = ast.unparse(node.func)
                if (
                    func == "env"
                    or func.startswith("env.")
                    or func
                    in {
                        "os.environ.get",
                        "os.getenv",
                    }
                ):
                    name = node.args[0]
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and ast.unparse(node.value) == "os.environ"
            ):
                name = node.slice
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found[name.value] = f"{_name(module)}:{node.lineno}"
    return found


def _documented_variables() -> set[str]:
    """The first column of the configuration table: `A`, `B`, `…_C` (A's prefix with _C)."""
    names = set()
    for line in CONFIGURATION.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        previous = ""
        for cell in CODE.findall(line.split("|")[1]):
            if cell.startswith("…"):
                cell = previous.rsplit("_", 1)[0] + cell[1:]
            names.add(cell)
            previous = cell
    return names


def test_the_configuration_reference_lists_every_variable_the_settings_read():
    read = _settings_variables()
    assert {"DATABASE_URL", "JOB_PRUNE_BATCH", "QUEUE_LAG_SLA_BULK"} <= set(read)
    missing = {name: where for name, where in read.items() if name not in _documented_variables()}
    assert not missing, f"docs/configuration.md does not list: {missing}"


def test_the_configuration_reference_lists_only_variables_something_reads():
    documented = _documented_variables()
    assert {"JOB_CONCURRENCY_DEFAULT", "QUEUE_LAG_SLA_BULK", "THROTTLE_USER"} <= documented
    product = [p for p in PACKAGES if p != "tests"]  # not the virtualenv, not .data
    sources = [ROOT / "Makefile", *(f for p in product for f in (ROOT / p).rglob("*.py"))]
    text = "\n".join(p.read_text() for p in sources)
    unread = sorted(name for name in documented if not re.search(rf"\b{name}\b", text))
    assert not unread, f"docs/configuration.md lists variables nothing reads: {unread}"
