"""The campaign report on real campaigns: PNG, self-contained HTML, Markdown, diffs, and the page in Chromium."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from nrl_autoresearch.core.campaign import load
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.report.build import build_report
from nrl_autoresearch.report.markdown import counts, reproduce
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import PY, cli, git, make_repo, tree_digest
from tests.lab import CHROMIUM_FLAGS, chromium_screenshot

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "hf_" + "a1" * 12
# like tests.helpers.TRAIN, with run-to-run noise so that repeated baselines have a spread
NOISY = """\
import json, random
cfg = json.load(open("params.json"))
print(f"val_score: {1.0 - abs(cfg['lr'] - 0.1) + random.gauss(0, 0.01):.4f}")
"""
QUEUE = [
    {"name": "broken", "description": "a rate that is <b>not</b> a number & crashes", "set": {"lr": "oops"}},
    {"name": "good", "description": "the right learning rate", "set": {"lr": 0.1}},
    {"name": "worse", "description": "too high", "set": {"lr": 0.5}},
    {"name": "tuned", "description": "a note on top of good", "parent": "good", "set": {"note": TOKEN}},
]


def campaign(tmp: Path, queue: list[dict] | None, *options: str, lr: object = 0.01) -> Engine:
    """A real repository and campaign, run through the real command line with `queue` (None: init only)."""
    repo = make_repo(tmp / "repo", {"train.py": NOISY, "params.json": json.dumps({"lr": lr, "note": "none"}) + "\n"})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--params-file",
        "params.json",
        "--campaign",
        "rep",
        "--seed-flag",
        "--seed",
        *options,
        check=True,
    )
    if queue is not None:
        (tmp / "queue.json").write_text(json.dumps(queue))
        cli(repo, "run", "--proposer", f"queue:{tmp / 'queue.json'}", "--yes")
    return Engine(load(repo), say=lambda _: None)


class Page(HTMLParser):
    """What the tests read from a page: ids, hrefs, ledger row order, and each lineage node's ancestors."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str | None] = set()  # None: an element without an id
        self.hrefs: list[str] = []
        self.order: list[int] = []
        self.ancestors: dict[tuple[int, str], list[int]] = {}  # (row index, branch): enclosing row indexes
        self._open: list[int | None] = []  # the enclosing <li>s, with their row index when they are lineage nodes
        self.sorted_by: tuple[str, str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.ids.add(a.get("id"))
        if a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "th" and a.get("aria-sort"):
            self.sorted_by = (a["data-key"], a["aria-sort"])
        if tag == "tr" and a.get("data-index"):
            self.order.append(int(a["data-index"]))
        if tag == "li":
            index = int(a["data-index"]) if a.get("data-branch") else None
            if index is not None:
                self.ancestors[(index, a["data-branch"])] = [i for i in self._open if i is not None]
            self._open.append(index)

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self._open.pop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, dict[str, Path]]:
    """Maximised: baseline, a crash, a keep, a discard, a child of the keep, and a repeated baseline."""
    engine = campaign(tmp_path_factory.mktemp("max"), QUEUE, "--maximize", "--max-experiments", "6")
    engine.run(lambda _: Hypothesis("baseline", "the baseline again, for its spread"), max_runs=1)
    return engine, build_report(engine)


def test_png_is_a_real_picture(built):
    png = built[1]["png"].read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and width > 1000 and height > 400


def test_html_holds_rows_plot_lineage_and_working_links(built):
    engine, paths = built
    text = paths["html"].read_text()
    page, rows = Page(text), engine.rows()
    assert [r.status for r in rows if r.index != 5] == ["keep", "crash", "keep", "discard", "keep"]  # 5: a noisy tie
    assert {"ledger", "plot", "lineage", "best", "status"} <= page.ids
    assert page.order == [r.index for r in rows]
    assert "<svg" in text.split('id="plot"', 1)[1] and "baseline ± 1 sd" in text and "running best keep" in text
    lineage = {index: above for (index, _), above in page.ancestors.items()}
    assert {b for _, b in page.ancestors} == {r.branch for r in rows}
    assert lineage == {1: [], 2: [1], 3: [1], 4: [1], 5: [1, 3], 6: [1]}
    files = [unquote(h) for h in page.hrefs if not h.startswith("#")]
    assert len([f for f in files if f.endswith("run.log")]) >= len(rows) and all(
        (paths["html"].parent / f).is_file() for f in files
    )
    assert not any(h.startswith(("http:", "https:", "//")) for h in page.hrefs) and "<script src" not in text
    assert "&lt;b&gt;not&lt;/b&gt; a number &amp; crashes" in text and "<b>not</b>" not in text
    top = engine.best_row()
    assert escape(reproduce(top, engine.campaign)) in text.split('id="best"', 1)[1]


def test_diffs_are_written_against_the_parent_and_redacted(built):
    diffs = built[1]["diffs"]
    assert sorted(p.name for p in diffs.iterdir()) == sorted(
        ["1-baseline.diff", "2-broken.diff", "3-good.diff", "4-worse.diff", "5-tuned.diff", "6-baseline.diff"]
    )
    tuned = (diffs / "5-tuned.diff").read_text()
    assert '-{"lr": 0.1, "note": "none"}\n+{"lr": 0.1, "note": "***"}' in tuned  # on top of good, not the baseline
    assert TOKEN not in tuned
    assert "oops" in (diffs / "2-broken.diff").read_text()


def test_markdown_summary(built):
    engine, paths = built
    text = paths["markdown"].read_text()
    assert "| # | experiment | status | val_score | description |" in text
    for r in engine.rows():
        assert f"| {r.index} | {r.branch.rsplit('/', 1)[1]} | {r.status} |" in text
    assert "stop condition met: 6/6 attempted" in text and "![progress of rep](report.png)" in text
    assert reproduce(engine.best_row(), engine.campaign) in text


def test_a_campaign_just_initialised(tmp_path: Path):
    engine = campaign(tmp_path, None, "--maximize")
    paths = build_report(engine, html=tmp_path / "elsewhere" / "page.html")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["html"].parent.name == "elsewhere"
    assert "no row yet" in paths["html"].read_text() and "none yet" in paths["markdown"].read_text()


def test_only_crashes(tmp_path: Path):
    engine = campaign(tmp_path, None, "--maximize", "--baseline-repeats", "1", lr="bad")
    cli(engine.campaign.repo, "baseline")
    paths = build_report(engine)
    assert [r.status for r in engine.rows()] == ["crash"]
    assert "crash (1, no value)" in paths["html"].read_text() and "No keep yet" in paths["html"].read_text()


def test_a_minimised_metric_picks_the_lowest_keep(tmp_path: Path):
    queue = [{"name": "lower", "set": {"lr": 0.5}}, {"name": "higher", "set": {"lr": 0.1}}]
    engine = campaign(tmp_path, queue, "--minimize", "--max-experiments", "3")
    paths = build_report(engine)
    assert [r.status for r in engine.rows()] == ["keep", "keep", "discard"]
    assert "val_score (lower is better)" in paths["html"].read_text()
    top = engine.best_row()
    assert top is not None
    assert top.branch.endswith("/lower") and f"**Best keep:** `{top.branch}`" in paths["markdown"].read_text()


def test_reproduce_runs_in_a_fresh_worktree_into_a_new_folder(tmp_path: Path):
    engine = campaign(tmp_path, [{"name": "good", "set": {"lr": 0.1}}], "--maximize", "--max-experiments", "2")
    top, repo = engine.best_row(), engine.campaign.repo
    assert top is not None
    original = (repo / top.log_path).read_text()
    before = tree_digest(repo)
    command = reproduce(top, engine.campaign)
    assert "git checkout" not in command
    subprocess.run(["bash", "-c", command], cwd=repo, check=True, capture_output=True)
    assert tree_digest(repo) == before and (repo / top.log_path).read_text() == original
    worktree = repo / "reports/auto_research/rep/reproduce/good"
    assert git(worktree, "rev-parse", "HEAD").strip() == top.commit
    again = (repo / "reports/auto_research/rep/good-reproduced-2/run.log").read_text()
    assert float(again.split("val_score: ")[1]) == pytest.approx(1.0, abs=0.05)


def test_no_reader_takes_a_crash_for_a_result(tmp_path: Path):
    queue = [{"name": "lower", "set": {"lr": 0.5}}, {"name": "broken", "set": {"lr": "oops"}}]
    engine = campaign(tmp_path, queue, "--minimize", "--max-experiments", "3")
    repo = engine.campaign.repo
    tsv = (repo / "reports/auto_research_results.tsv").read_text().splitlines()
    assert tsv[3].split("\t")[6:8] == ["0.000000", "0.0"]  # the template's crash values, the best-looking for a minimum
    best = engine.best_row()
    assert best is not None and best.branch.endswith("/lower")
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert status["best_keep"]["branch"].endswith("/lower")
    assert status["latest"]["metric_value"] is None and status["latest"]["memory_gb"] is None
    crash = json.loads(cli(repo, "ledger", "--json", check=True).stdout)["rows"][2]
    assert crash["status"] == "crash" and crash["metric_value"] is None and crash["memory_gb"] is None
    assert "latest: [3]" in cli(repo, "status", check=True).stdout.split("crash")[0]
    paths = build_report(engine)
    assert "| 3 | broken | crash | crash |" in paths["markdown"].read_text()
    svg = paths["html"].read_text()
    assert "crash (1, no value)" in svg and "keep (2)" in svg


def test_counts_add_gpu_hours_once_there_are_some():
    row = Row(1, "p/baseline", "a", "b", "r", "m", 1.0, 1.0, 30.0, "local", "none", "c", "l", "keep", "d")
    assert counts([row]) == "1 attempted: 1 keep, 0 discard, 0 crash"
    assert counts([row], 2.0) == "1 attempted: 1 keep, 0 discard, 0 crash, 2 GPU-hours"


def _dump_dom(chromium: str, url: str, profile: Path, timeout: float = 60) -> str:
    """The page's DOM after its scripts ran; the browser's whole process group ends with the call."""
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        return proc.communicate(timeout=timeout)[0]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.chromium
def test_chromium_renders_and_sorts_the_page(built, chromium: str, tmp_path: Path):
    engine, paths = built
    rows = engine.rows()
    dom = _dump_dom(chromium, paths["html"].as_uri(), tmp_path / "profile")
    page = Page(dom)
    assert page.order == [r.index for r in rows] and {"plot", "lineage", "ledger"} <= page.ids
    assert "<svg" in dom.split('id="plot"', 1)[1].split("</section>", 1)[0]
    assert {b for _, b in page.ancestors} == {r.branch for r in rows}
    page = Page(_dump_dom(chromium, paths["html"].as_uri() + "?sort=-metric_value", tmp_path / "profile"))
    assert page.order == [r.index for r in sorted(rows, key=_descending)]
    assert page.sorted_by == ("metric_value", "descending")


def _descending(row: Row) -> tuple:
    """The page's order for ?sort=-metric_value: highest first, ties by index, rows without a value last."""
    return (row.metric_value is None, -(row.metric_value or 0), row.index)


@pytest.mark.chromium
def test_chromium_screenshot_of_the_report(built, chromium: str, tmp_path: Path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    result = chromium_screenshot(built[1]["html"].as_uri(), shot, tmp_path / "profile", size="1400,2000")
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result.stdout
    assert struct.unpack(">II", shot.read_bytes()[16:24]) == (1400, 2000)
