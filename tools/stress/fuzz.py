"""Hypothesis over migctl's command line and over config files.

* Command lines: a command, then words drawn from its options, profile names, GPU selections,
  numbers at the edges (``nan``, ``inf``, ``1e309``, 20-digit counts, non-ASCII digits), paths
  (``/dev/zero``, ``-``) and arbitrary unicode.
* Config files: YAML documents of any shape built from mig-parted's keys and arbitrary ones,
  scalars of every type and size, and malformed text (cut short, tabs, stray brackets).

Every run, on a simulated node put back between examples: no internal error, no traceback, a
documented exit code, and a command that failed changed nothing.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st

from stress.harness import DOCUMENTED_EXITS, Scratch, Tally, cli, leaked

COMMANDS = (
    "status", "devices", "profiles", "placements", "ci-profiles", "create", "create-ci", "destroy", "mode", "reset",
    "plan", "apply", "assert", "export", "recover", "run", "doctor",
)  # fmt: skip
OPTIONS = (
    "-i", "--gi", "--ci", "--uuid", "--all", "--placement", "--wait", "--layout", "-f", "-c", "--json", "--force",
    "--destroy-instances", "--no-compute-instance", "--dry-run", "--sequential", "--on", "--no-wait", "--", "-o",
    "--name", "--portable", "--no-smoke", "--debug-not-an-option",
)  # fmt: skip
WORDS = (
    "1g.12gb", "1g.12gb:2", "1g.12gb:7", "7g.96gb", "3g.48gb[1c,1c,1c]", "3g.48gb[1c,1c,1c,1c]", "2g.24gb@2",
    "4g.48gb:1000000000", "19", "0", "1", "7", "0-7", "0,2", "all", "enable", "disable", "nan", "inf", "-inf", "-1",
    "1e309", "99999999999999999999", "\u0663", "\uff13", "GPU-", "MIG-", "13:0", "0:13", "true", "/dev/zero", "-",
    "yaml", "json", "disabled", "",
)  # fmt: skip
MUTATING = {"create", "create-ci", "destroy", "mode", "reset", "apply", "recover"}

word = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(WORDS), st.text(max_size=24))
argv = st.tuples(st.sampled_from(COMMANDS), st.lists(word, max_size=8))

KEYS = (
    "version", "mig-configs", "devices", "mig-enabled", "mig-devices", "device-filter", "x-migctl", "instances",
    "profile", "placement", "compute", "all-1g.12gb", "custom", "1g.12gb", "7g.96gb", "1c.3g.48gb", "3g.48gb",
)  # fmt: skip
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
    st.sampled_from(["v1", "all", "0x233010DE", "0x233010DE:0x16A110DE:extra", "1g.12gb", "7"]),
)
document = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=24,
)
mig_parted = st.fixed_dictionaries(
    {
        "version": st.sampled_from(["v1", "v2", 1]),
        "mig-configs": st.dictionaries(
            st.sampled_from(["custom", "all-1g.12gb", "x"]),
            st.lists(
                st.fixed_dictionaries(
                    {
                        "devices": st.one_of(st.just("all"), st.lists(st.integers(-1, 9), max_size=3)),
                        "mig-enabled": st.one_of(st.booleans(), scalar),
                        "mig-devices": st.dictionaries(
                            st.sampled_from(KEYS[12:]), st.integers(-3, 2**40), max_size=3
                        ),
                    }
                ),
                max_size=2,
            ),
            max_size=2,
        ),
    }
)


def _malformed(text: str, how: int) -> str:
    if how == 1:
        return text[: len(text) // 2]
    if how == 2:
        return text.replace("  ", "\t", 1)
    if how == 3:
        return text + "\n: [ {\n"
    return text


def fuzz(examples: int, seed: int) -> list[Tally]:
    s = Scratch("h20x2")
    try:
        env = s.env()
        cli(env, "apply", "-i", "0", "--layout", "1g.12gb:7")
        s.save("base")
        return [_cli_fuzz(s, examples, seed), _config_fuzz(s, examples, seed)]
    finally:
        s.close()


def _judge(s: Scratch, tally: Tally, trial: str, args: list[str], stdin: str = "") -> None:
    s.restore("base")
    before = s.layout()
    ran = cli(s.env(), *args, stdin=stdin)
    tally.tried += 1
    tally.texts(trial, ran.out, ran.err)
    exact = ran.code in DOCUMENTED_EXITS
    if not exact:
        tally.note(f"{trial}: exit {ran.code}: {ran.err[-200:]}")
    if ran.code != 0:
        after = s.layout()
        if after != before:
            exact = False
            tally.note(f"{trial}: failed (exit {ran.code}) but changed the node")
        tally.leaked += leaked(after, before)
    tally.exact += exact


def _settings(examples: int, seed: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _cli_fuzz(s: Scratch, examples: int, seed: int) -> Tally:
    tally = Tally("fuzz: command lines")

    @seeded(seed)
    @_settings(examples, seed)
    @given(argv)
    def one(case: tuple[str, list[str]]) -> None:
        command, words = case
        args = [command, *words]
        if command == "run" and "--" not in words:
            args += ["--", "true"]  # run's job is never a random program
        elif command == "run":
            at = args.index("--")
            args = [*args[: at + 1], "true"]
        if command == "doctor":
            args.append("--no-smoke")
        _judge(s, tally, f"migctl {args!r}", args)

    one()
    return tally


def _config_fuzz(s: Scratch, examples: int, seed: int) -> Tally:
    tally = Tally("fuzz: config files")
    path = Path(s.root) / "config.yaml"

    @seeded(seed)
    @_settings(examples, seed)
    @given(st.one_of(document, mig_parted), st.integers(0, 3), st.sampled_from(["plan", "apply-dry", "apply"]))
    def one(doc: object, how: int, verb: str) -> None:
        try:
            text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        except (yaml.YAMLError, ValueError, OverflowError):
            text = repr(doc)
        text = _malformed(text, how)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        if verb == "plan":
            args = ["plan", "-f", str(path)]
        elif verb == "apply-dry":
            args = ["apply", "-f", str(path), "-c", "custom", "--dry-run"]
        else:
            args = ["apply", "-i", "1", "-f", "-", "-c", "custom"]
        _judge(s, tally, f"{verb} of {text[:120]!r}", args, stdin=text if "-" in args else "")

    one()
    return tally
