"""Shared fixtures: real Slurm, Ray, MLflow and Chromium for the tests that need them.

The services start once per session, on first use, and are stopped at session
end whatever the test outcome. If one cannot start, the tests using it fail
(not skip): these tests exist to exercise the real thing. Under parallel workers
(pytest-xdist, `--dist loadgroup`) every test of one service runs on the same
worker, so each service still starts once.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from pathlib import Path

import pytest

from tests.lab import (
    LabError,
    RayCluster,
    SlurmCluster,
    chromium_binary,
    start_ray,
    start_slurm,
    start_watchdog,
    stop_ray,
    stop_slurm,
    stop_watchdog,
)


def pytest_configure(config: pytest.Config) -> None:
    for name, what in [
        ("slurm", "a private single-node Slurm cluster (fixture slurm_cluster)"),
        ("ray", "a private local Ray head with the Jobs API (fixture ray_cluster)"),
        ("chromium", "Debian's headless Chromium (fixture chromium)"),
        ("mlflow", "a private MLflow tracking server with a SQLite backend (fixture mlflow_server)"),
    ]:
        config.addinivalue_line("markers", f"{name}: needs {what}")
    _hear_ctrl_c()


def _hear_ctrl_c() -> None:
    """Give the engines the tests start the default SIGINT, whatever the suite inherited.

    A suite started in the background of a non-interactive shell inherits SIGINT ignored, and every process it
    starts would too: the tests that press Ctrl-C on an engine would wait out its run instead.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


# The fixture of each service, and the marker of the tests that use it.
SERVICE_MARKERS = {"slurm_cluster": "slurm", "ray_cluster": "ray", "chromium": "chromium", "mlflow_server": "mlflow"}
# services started once per session and held by one worker, by the group of that worker (Ray and MLflow share one:
# a test uses both)
SHARED_SERVICES = {"slurm": "slurm", "ray": "ray-mlflow", "mlflow": "ray-mlflow"}
_ungrouped = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Every test using a service carries its marker, so that `-m 'not slurm'` leaves out all that need Slurm,
    and the group of its service's worker (before xdist reads the groups).

    A service test fails before its services start when `--dist loadgroup` lost the groups: every worker would
    start its own copy of each service, silently (a pytest-xdist that does not suffix this pytest's node ids)."""
    for item in items:
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        groups = sorted({group for marker, group in SHARED_SERVICES.items() if item.get_closest_marker(marker)})
        if groups:
            item.add_marker(pytest.mark.xdist_group("+".join(groups)))
    yield
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):
        for item in items:
            item.stash[_ungrouped] = bool(item.get_closest_marker("xdist_group")) and "@" not in item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.stash.get(_ungrouped, False):
        pytest.fail(
            "--dist loadgroup did not group this service test: this pytest-xdist does not suffix this pytest's node "
            "ids; install the versions pyproject.toml pins (scripts/venv)",
            pytrace=False,
        )


# The services started so far, by fixture name.
_started: dict[str, SlurmCluster | RayCluster] = {}
_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        item.stash[_failed] = True
    return report


@pytest.fixture(autouse=True)
def _cancel_jobs_of_failed_test(request: pytest.FixtureRequest):
    """After a failed test, cancel the jobs it left on the shared services:
    left running, they would hold the CPUs that the next tests wait for."""
    yield
    if request.node.stash.get(_failed, False):
        for name, service in _started.items():
            if name in request.fixturenames:
                service.cancel_all_jobs()


def _ensure_stopped(request: pytest.FixtureRequest, down_script: str, env: dict[str, str], stop) -> None:
    """Arrange for a service to be stopped, before it is even started.

    The finalizer covers the normal end of the session and a half-finished
    start; the watchdog covers a pytest that dies without running finalizers.
    """
    name = request.fixturename
    assert name is not None, "a fixture's own request names it"
    watchdog = start_watchdog(down_script, env)

    def finalize() -> None:
        try:
            _started.pop(name, None)
            stop()
        finally:
            stop_watchdog(watchdog)

    request.addfinalizer(finalize)


@pytest.fixture(scope="session")
def slurm_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SlurmCluster:
    """A private Slurm cluster: `.run("sbatch", ...)`, or add `.env` (SLURM_CONF) to a command's env."""
    lab = tmp_path_factory.mktemp("slurm")
    _ensure_stopped(request, "slurm-down.sh", {"SLURM_LAB": str(lab)}, lambda: stop_slurm(lab))
    try:
        slurm = _started["slurm_cluster"] = start_slurm(lab)
        return slurm
    except LabError as exc:
        error = str(exc)  # fail outside `except`: no chained traceback
    pytest.fail(f"could not start the Slurm lab cluster:\n{error}", pytrace=False)


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest) -> RayCluster:
    """A private Ray head with 2 logical GPUs (jobs may ask for them on any machine); `.address` is the dashboard
    URL for the Jobs API."""
    # A short path: Ray's socket paths under the lab may not exceed 107 bytes, and a parallel worker's temporary
    # folder (`.../popen-gw0/`) is too deep for that.
    lab = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))

    def stop() -> None:
        stop_ray(lab)
        shutil.rmtree(lab, ignore_errors=True)

    _ensure_stopped(request, "ray-down.sh", {"RAY_LAB": str(lab)}, stop)
    try:
        ray = _started["ray_cluster"] = start_ray(lab, gpus=2)
        return ray
    except LabError as exc:
        error = str(exc)
    pytest.fail(f"could not start the Ray lab head:\n{error}", pytrace=False)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's headless-capable Chromium."""
    try:
        return chromium_binary()
    except LabError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A private MLflow tracking server on 127.0.0.1; `.url` is its tracking URI."""
    from tests.lab.mlflow_server import start_mlflow

    try:
        server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    except LabError as exc:
        error = str(exc)
    else:
        yield server
        server.stop()
        return
    pytest.fail(f"could not start the MLflow lab server:\n{error}", pytrace=False)
