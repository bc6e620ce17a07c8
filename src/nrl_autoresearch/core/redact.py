"""Secrets never reach a file we write: every ledger row, note, session file, report and log line passes here."""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Callable, Mapping

MASK = "***"
_SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
_NOT_SECRET = {"PATH", "HOME", "SSH_AUTH_SOCK", "KEYTIMEOUT", "GPG_AGENT_INFO"}
_WORD = r"[\w.-]*(?:token|api[_-]?key|secret|password|passwd)"
# a flag whose name says so: `--hf-token`, `--wandb-key`, `--auth-header`, `--db-password`
_FLAG_NAME = r"(?:[\w.-]*(?:token|secret|password|passwd|credentials?)|(?:[\w.]+[-_])?(?:key|auth|authorization))(?:[-_][\w.-]*)?"
# `--hf-token abc`, `--wandb-key=abc` (a flag and its value) and `HF_TOKEN=abc`, `password: abc` (assignments)
_FLAG = re.compile(rf"(?i)(--?{_FLAG_NAME}(?:\s+|=))(?!\$\{{)([^\s'\"]+)")
_ASSIGNED = re.compile(rf"(?i)(\b{_WORD}\s*[=:]\s*)(?!\$\{{)([^\s'\",]+)")
# well-known token shapes
_SHAPES = re.compile(
    r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abp]-[A-Za-z0-9-]{10,})\b"
)
# what every match of a pattern contains: a text without it is left as it is, without the pattern's slow scan
# (a report page runs to megabytes)
_HINTS = {
    _ASSIGNED: re.compile(r"(?i)(?:token|api[_-]?key|secret|password|passwd)\s*[=:]"),
    _SHAPES: re.compile(r"hf_|sk-|gh[pousr]_|xox[abp]-"),
}


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets, longest first."""
    env = os.environ if environ is None else environ
    values = {value for name, value in env.items() if _names_a_secret(name) and len(value) >= 6}
    return sorted(values, key=len, reverse=True)


@functools.lru_cache(maxsize=4096)
def _names_a_secret(name: str) -> bool:
    """Each name is judged once: every journal line, row and checkpoint looks the environment up."""
    return name not in _NOT_SECRET and _SECRET_NAME.search(name) is not None


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """Mask secret environment values, `--token X`-style arguments and well-known token shapes."""
    return redactor(environ)(text)


def redactor(environ: dict[str, str] | None = None) -> Callable[[str], str]:
    """`redact` with the environment's secrets looked up once, for writing many texts (a report's diffs)."""
    values = secret_values(environ)

    def masked(text: str) -> str:
        for value in values:
            text = text.replace(value, MASK)
        for pattern in (_FLAG, _ASSIGNED):
            if _may_match(pattern, text):
                text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return _SHAPES.sub(MASK, text) if _may_match(_SHAPES, text) else text

    return masked


def _may_match(pattern: re.Pattern, text: str) -> bool:
    hint = _HINTS.get(pattern)
    return hint is None or hint.search(text) is not None


SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def protect_command(argv: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """A command safe to store: secret environment values become `${NAME}` references (expanded at launch);
    any other secret on the command line is refused, since it could not be stored without being written."""
    from nrl_autoresearch.core.errors import UsageError

    env = os.environ if environ is None else environ
    names = sorted(((n, v) for n, v in env.items() if v in secret_values(env)), key=lambda nv: len(nv[1]), reverse=True)
    protected = []
    for arg in argv:
        for name, value in names:
            arg = arg.replace(value, "${" + name + "}")
        protected.append(arg)
    leftover = redact(" ".join(protected), {})
    if leftover != " ".join(protected):
        raise UsageError(
            "the command carries a secret, which would be written to the campaign files: put it in an environment "
            "variable and refer to it as ${NAME} (for example --hf-token '${HF_TOKEN}' with HF_TOKEN exported)"
        )
    return protected


def expand_secrets(argv: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """The command to execute: `${NAME}` references to set environment variables replaced by their values."""
    env = os.environ if environ is None else environ
    return [SECRET_REF.sub(lambda m: env.get(m.group(1), m.group(0)), arg) for arg in argv]


def shell_word(arg: str) -> str:
    """One argument as shell text: quoted literally, except `${NAME}` references, which the job's shell
    expands at run time (an unset one stays literal, as `expand_secrets` leaves it)."""
    pieces = SECRET_REF.split(arg)  # literal, name, literal, name, ..., literal
    words = [shlex.quote(p) if i % 2 == 0 else f'"${{{p}-\\${{{p}\\}}}}"' for i, p in enumerate(pieces) if p or i % 2]
    return "".join(words) or "''"


def shell_command(argv: list[str]) -> str:
    return " ".join(shell_word(arg) for arg in argv)
