"""Whether the model and the datasets a recipe names on the Hugging Face Hub will be there at the first step: in the
local cache (the hub layout `models--org--name/snapshots/<revision>/`), or downloadable with the token at hand.

Without an answer from the Hub the line says unknown, never pass. The token is read only to ask the Hub
whether it grants access, and goes nowhere else. The cached weights also size a run's checkpoints.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.recipe import Check, unknown
from nrl_autoresearch.recipes.nemo_config import get_dotted, leaves

MODEL_KEYS = ("policy.model_name", "teacher.model_name")
# Organisations whose models ask for an accepted licence and a token (meta-llama's Llama-3.2-1B in the base
# configs): named as the failure without a token even when the Hub cannot be asked.
GATED_ORGS = ("meta-llama", "google", "mistralai")
DATASET_KEYS = ("data_path", "dataset_name")  # under data.*: a Hub id (org/name) or a local file
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".txt", ".arrow", ".tsv")
PROBE_TIMEOUT_S = 5.0


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or hf_home() / "hub")


def token() -> str | None:
    """HF_TOKEN (or its older name), else the file `huggingface-cli login` writes."""
    found = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if found:
        return found
    token_file = Path(os.environ.get("HF_TOKEN_PATH") or hf_home() / "token")
    try:
        return token_file.read_text().strip() or None
    except OSError:
        return None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached(kind: str, repo_id: str) -> Path | None:
    """The newest snapshot of the repository in the hub cache that holds a file, or None."""
    snapshots = hub_cache() / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots"
    found = [s for s in snapshots.glob("*") if s.is_dir() and any(p.is_file() for p in s.rglob("*"))]
    return max(found, key=lambda s: s.stat().st_mtime) if found else None


def is_repo_id(value: str, root: Path) -> bool:
    """An `org/name` that is not a file of the checkout nor a data file's name."""
    return bool(REPO_ID.fullmatch(value)) and not value.lower().endswith(DATA_SUFFIXES) and not (root / value).exists()


def weights_gib(repo_id: str) -> float | None:
    """The size of a cached model's weight files (safetensors, else .bin), or None when it is not cached."""
    snapshot = cached("model", repo_id)
    if snapshot is None:
        return None
    files = list(snapshot.rglob("*.safetensors")) or list(snapshot.rglob("*.bin"))
    return sum(f.stat().st_size for f in files) / 2**30 if files else None


def checkpoint_gib(resolved: Mapping[str, Any]) -> tuple[float | None, str]:
    """About what one run's checkpoints take: the policy's weights, with two fp32 Adam moments per bf16 weight
    (4x more) when the optimizer is saved, for keep_top_k checkpoints plus the one written before the oldest goes."""
    if not get_dotted(resolved, "checkpointing.enabled", False):
        return 0.0, "checkpointing is off"
    name = get_dotted(resolved, "policy.model_name", None)
    weights = weights_gib(name) if isinstance(name, str) else None
    if weights is None:
        return None, f"the size of a checkpoint is unknown until {name} is in the Hugging Face cache"
    optimizer = bool(get_dotted(resolved, "checkpointing.save_optimizer", True))
    keep = get_dotted(resolved, "checkpointing.keep_top_k", None)
    kept = keep + 1 if isinstance(keep, int) and keep > 0 else None
    if kept is None:
        return None, "checkpointing.keep_top_k is unset, so every checkpoint is kept"
    each = weights * (5 if optimizer else 1)
    return each * kept, (
        f"{kept} checkpoints of {each:.1f} GiB: {weights:.1f} GiB of weights"
        + (" and the optimizer state" if optimizer else "")
    )


def model_checks(resolved: Mapping[str, Any]) -> list[Check]:
    names = dict.fromkeys(v for key in MODEL_KEYS if isinstance(v := get_dotted(resolved, key, None), str))
    return [_model_check(name) for name in names]


def dataset_checks(resolved: Mapping[str, Any], root: Path) -> list[Check]:
    """One line per Hub dataset the recipe's `data` section names by id; one unknown line for those it names by
    NeMo-RL's dataset registry (which Hub dataset each loads is NeMo-RL's code, not the recipe)."""
    named: dict[str, None] = {}
    registry: dict[str, None] = {}
    for path, value in leaves(get_dotted(resolved, "data", None) or {}, "data"):
        key = next(part for part in reversed(path.split(".")) if not part.isdigit())
        if key not in DATASET_KEYS or not isinstance(value, str) or not value:
            continue
        if is_repo_id(value, root):
            named[value] = None
        elif key == "dataset_name" and "/" not in value and "://" not in value:
            registry[value] = None
    checks = [_reachable("dataset", name) for name in named]
    if registry:
        checks.append(
            unknown(
                "datasets named by NeMo-RL's registry",
                f"{', '.join(registry)}: NeMo-RL resolves them at the first run (from the Hub, or "
                "from their data_path)",
            )
        )
    return checks


def _model_check(name: str) -> Check:
    if Path(name).is_absolute():
        found = Path(name).exists()
        return Check(found, f"model {name} reachable", "a local path" if found else f"{name} does not exist")
    return _reachable("model", name)


def _reachable(kind: str, repo_id: str) -> Check:
    item = f"{kind} {repo_id} reachable"
    snapshot = cached(kind, repo_id)
    if snapshot is not None:
        return Check(True, item, f"in the Hugging Face cache ({snapshot})")
    where = f"not in {hub_cache()}"
    held = token()
    if kind == "model" and repo_id.split("/", 1)[0] in GATED_ORGS and not held:
        return Check(
            False,
            item,
            f"{where} and gated, with no token: accept its licence on huggingface.co, then "
            "export HF_TOKEN or run 'huggingface-cli login'",
        )
    if offline():
        return Check(
            False,
            item,
            f"{where}, and HF_HUB_OFFLINE is set, so the run cannot download it: "
            f"download it where the Hub is reachable (huggingface-cli download {repo_id}"
            f"{' --repo-type dataset' if kind == 'dataset' else ''}) or unset HF_HUB_OFFLINE",
        )
    return _asked(item, where, kind, repo_id, held)


def _asked(item: str, where: str, kind: str, repo_id: str, held: str | None) -> Check:
    """The Hub's own answer to 'may this token download it' (its auth-check endpoint)."""
    answer = hub_answer(kind, repo_id, held)
    if answer == "ok":
        return Check(True, item, f"{where}; the Hub grants access, it downloads at the first run")
    if answer == "gated":
        return Check(
            False,
            item,
            f"{where} and gated: "
            + (
                "the token's account has not accepted its licence on huggingface.co"
                if held
                else "accept its licence on huggingface.co, then export HF_TOKEN or run 'huggingface-cli login'"
            ),
        )
    if answer == "missing":
        return Check(False, item, f"{where}, and the Hub has no {kind} {repo_id} this token may see: check the name")
    return unknown(
        item, f"{where}, and the Hub did not answer ({answer}); it downloads at the first run if the machine reaches it"
    )


def hub_answer(kind: str, repo_id: str, held: str | None) -> str:
    """'ok', 'gated', 'missing', or why the Hub could not be asked."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(
        f"{endpoint}/api/{kind}s/{repo_id}/auth-check", headers={"Authorization": f"Bearer {held}"} if held else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S):
            return "ok"
    except urllib.error.HTTPError as err:
        code = err.headers.get("X-Error-Code", "")
        if code == "GatedRepo" or (err.code == 403 and not code):
            return "gated"
        if code in ("RepoNotFound", "RevisionNotFound") or err.code == 404:
            return "missing"
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        return str(getattr(err, "reason", err)) or type(err).__name__
