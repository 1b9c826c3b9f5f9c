"""The parsing boundary under fire: any input gives a valid model or the domain error, nothing else.

A nasty corpus (each case issue 10 found, as a named param) runs every time. Then hypothesis
generates JSON-ish documents, mutations of real files, random bytes and interval texts, and
runs them through the real parsers (and the bounded readers on real files): at least 10,000
examples per run, derandomized so that CI runs the same ones and a failure reproduces.
JCP_FUZZ_SCALE=10 multiplies every count for a longer local run.
"""

import asyncio
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from devstack.kubelet import write_volume
from jcp.inputs.configdir import load_config
from jcp.inputs.secrets import resolve
from jcp.model.arch import SUPPORTED
from jcp.model.config import (
    MAX_INTERVAL,
    MAX_PROBLEMS,
    Config,
    ConfigError,
    ConfigFiles,
    IntervalError,
    build_config,
    decode_files,
    parse_interval,
)
from jcp.model.credentials import CredentialError, RegistryAuth, parse_docker_config
from jcp.model.jsonsafe import MAX_DEPTH, JsonError, loads
from jcp.model.refs import InvalidReferenceError, parse_reference
from tests.support.nasty_inputs import (
    B64,
    CONFIGS,
    FRAGMENTS,
    HOST,
    NASTY_CONFIGS,
    NASTY_INTERVALS,
    NASTY_SECRETS,
    SECRET,
    SECRET_BASES,
    SECRET_VALUES,
    make,
)

# On a failure hypothesis imports libcst (to print a patch), which warns through mypy_extensions;
# with warnings as errors that would hide the failing example behind an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated")

settings.register_profile(
    "jcp-fuzz",
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    deadline=None,  # a 1 MiB case takes a second on a busy 2-core machine; that is not a bug
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCALE = float(os.environ.get("JCP_FUZZ_SCALE", "1"))


def examples(n: int) -> settings:
    return settings(settings.get_profile("jcp-fuzz"), max_examples=max(1, int(n * SCALE)))


def check_text(text: str) -> None:
    """A problem as a user sees it: one printable line (no control characters), bounded."""
    assert text.isprintable(), text[:300]
    assert len(text) < 1000, text[:300]


def check_config(files: ConfigFiles, interval_flag: float | None = None) -> Config | ConfigError:
    """A valid Config, or a ConfigError whose problems name the files: nothing else escapes."""
    try:
        config = build_config(files, interval_flag=interval_flag, env={})
    except ConfigError as exc:
        check_rejected(exc, (files.image_file, files.interval_file))
        return exc
    assert 1 <= config.interval <= MAX_INTERVAL or config.interval == interval_flag
    assert all(p.severity == "warning" for p in config.warnings)
    for p in config.warnings:
        check_text(str(p))
    for entry in config.entries:
        assert isinstance(entry.ref, str)
        assert entry.ref.strip()
        assert (entry.arch is None) != (entry.default_ref is None)
    for arch in SUPPORTED:
        for target in config.select(arch).targets:
            assert parse_reference(str(target.image)) == target.image
        for labels in NODE_LABELS:
            check_selection(config, arch, labels)
    return config


NODE_LABELS: list[dict[str, str] | None] = [None, {}, {"gpu": "nvidia", "mem": "1t"}, {"gpu": ""}]


def check_selection(config: Config, arch: str, labels: dict[str, str] | None) -> None:
    """Every entry is pulled or skipped with a printable reason; the order is by priority."""
    selection = config.select(arch, labels)
    skipped = {s.index for s in selection.skipped}
    pulled = {t.entry.index for t in selection.targets}
    assert not skipped & pulled
    for s in selection.skipped:
        check_text(s.reason)
        assert (s.entry.selector is not None) or s.reason.startswith("no arch.")
    priorities = [t.priority for t in selection.targets]
    assert priorities == sorted(priorities, reverse=True)


def test_single_label_registry_is_refused() -> None:
    """Found by test_generated_entries: `Upper/case` names registry host `Upper` (an uppercase
    first component is a host in Docker's grammar), normalised to `upper`; printed, it became
    `upper/case:latest`, which is docker.io/upper/case: the runtime would have been asked for
    another image. No reference can name such a host, so it is refused, saying why."""
    hub = re.escape("runtimes read 'upper/...' as a Docker Hub")
    with pytest.raises(InvalidReferenceError, match=hub):
        parse_reference("Upper/case")
    with pytest.raises(InvalidReferenceError, match=re.escape("has no '.' or ':'")):
        parse_reference("app:1", default_registry="myregistry")
    assert parse_reference("localhost/app").registry == "localhost"
    assert parse_reference("Upper:5000/case").registry == "upper:5000"


def check_rejected(exc: ConfigError, files: tuple[str | None, ...]) -> None:
    assert any(p.severity == "error" for p in exc.problems)
    assert len(exc.problems) <= MAX_PROBLEMS + 1
    for p in exc.problems:
        assert p.file in files, p
        check_text(str(p))


def check_secret(data: bytes) -> RegistryAuth | CredentialError:
    """Credentials for HOST, or a CredentialError saying the secret is invalid, without a value."""
    try:
        auth = parse_docker_config(data, SECRET, HOST)
    except CredentialError as exc:
        check_credential_error(exc, invalid=True)
        return exc
    assert auth.host == HOST
    assert auth.identitytoken or (auth.username and auth.password is not None)
    assert_no_secret(repr(auth) + str(auth))
    return auth


def check_credential_error(exc: CredentialError, *, invalid: bool) -> None:
    text = str(exc)
    prefix = f"secret '{SECRET}' for registry {HOST}" + (" is invalid: " if invalid else "")
    assert text.startswith(prefix), text
    check_text(text)
    assert_no_secret(text + repr(exc))


def assert_no_secret(text: str) -> None:
    for value in SECRET_VALUES:
        for i in range(len(value) - 7):
            assert value[i : i + 8] not in text, text


# --- the nasty corpus: every case, every run -------------------------------------------------


@pytest.mark.parametrize(("image", "interval", "expected"), NASTY_CONFIGS.values(),
                         ids=list(NASTY_CONFIGS))  # fmt: skip
def test_nasty_config(tmp_path: Path, image: object, interval: object, expected: str) -> None:
    make(tmp_path / "image.config", image)
    make(tmp_path / "interval", interval)
    if expected == "ok":
        config = load_config(tmp_path, env={})
        files = (tmp_path / "image.config").read_text("utf-8-sig")
        assert isinstance(check_config(ConfigFiles(config.source, files, None, None)), Config)
        return
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    text = "\n".join(str(p) for p in info.value.problems)
    assert expected in text, text
    check_rejected(info.value, (str(tmp_path / "image.config"), str(tmp_path / "interval")))


@pytest.mark.parametrize(("data", "expected"), NASTY_SECRETS.values(), ids=list(NASTY_SECRETS))
def test_nasty_secret(data: bytes, expected: str) -> None:
    result = check_secret(data)
    if expected == "ok":
        assert isinstance(result, RegistryAuth), result
    else:
        assert isinstance(result, CredentialError)
        assert expected in str(result), str(result)


@pytest.mark.parametrize(("text", "expected"), NASTY_INTERVALS.values(), ids=list(NASTY_INTERVALS))
def test_nasty_interval(text: str, expected: str) -> None:
    with pytest.raises(IntervalError) as info:
        parse_interval(text, "cfg/interval")
    assert str(info.value).startswith("cfg/interval: ")
    assert "1 to 604800 seconds (7 days)" in str(info.value)
    assert expected in str(info.value)
    check_text(str(info.value))


@pytest.mark.parametrize("kind", ["directory", "fifo", "large", "dangling"])
async def test_nasty_secret_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / SECRET / "config.json"
    path.parent.mkdir()
    make(path, kind)
    with pytest.raises(CredentialError) as info:
        await resolve(tmp_path, SECRET, HOST)
    text = str(info.value)
    assert text.startswith(f"secret '{SECRET}' for registry {HOST}"), text
    assert str(path) in text or kind == "dangling", text
    expected = {
        "directory": "not a regular file",
        "fifo": "not a regular file",
        "large": "larger than 1 MiB, the most a Secret can hold",
        "dangling": "secret not mounted",
    }
    assert expected[kind] in text


# --- generated JSON-ish documents, with what jcp must make of each ----------------------------


@dataclass(frozen=True)
class Doc:
    text: str
    ok: bool  # jsonsafe must accept it (and parse it to VALUE)
    value: object
    depth: int = 0


def _float(x: float) -> Doc:
    if math.isnan(x):
        return Doc("NaN", ok=False, value=None)
    if math.isinf(x):
        return Doc("Infinity" if x > 0 else "-Infinity", ok=False, value=None)
    return Doc(repr(x), ok=True, value=x)


def _digits(n: int, negative: bool) -> Doc:
    text = "-" * negative + "9" * n
    return Doc(text, ok=n <= 100, value=int(text) if n <= 100 else None)


def _nested(n: int) -> Doc:
    value: object = []
    for _ in range(min(n, MAX_DEPTH) - 1):
        value = [value]
    return Doc("[" * n + "]" * n, ok=n <= MAX_DEPTH, value=value, depth=n)


def _list(items: list[Doc]) -> Doc:
    depth = 1 + max((d.depth for d in items), default=0)
    ok = depth <= MAX_DEPTH and all(d.ok for d in items)
    text = "[" + ", ".join(d.text for d in items) + "]"
    return Doc(text, ok=ok, value=[d.value for d in items], depth=depth)


def _object(pairs: list[tuple[str, Doc]]) -> Doc:
    depth = 1 + max((d.depth for _, d in pairs), default=0)
    unique = len({k for k, _ in pairs}) == len(pairs)
    ok = depth <= MAX_DEPTH and unique and all(d.ok for _, d in pairs)
    text = "{" + ", ".join(f"{json.dumps(k)}: {d.text}" for k, d in pairs) + "}"
    return Doc(text, ok=ok, value={k: d.value for k, d in pairs}, depth=depth)


def _good(text: str, value: object) -> Doc:
    return Doc(text, ok=True, value=value)


LEAVES = st.one_of(
    st.just(_good("null", None)),
    st.booleans().map(lambda b: _good(json.dumps(b), b)),
    st.integers(-(10**30), 10**30).map(lambda i: _good(str(i), i)),
    st.builds(_digits, st.integers(90, 6000), st.booleans()),
    st.floats().map(_float),
    st.text(max_size=12).map(lambda s: _good(json.dumps(s), s)),
    st.text(max_size=12).map(lambda s: _good(json.dumps(s, ensure_ascii=False), s)),
    # Lone surrogates: json.loads takes their escapes, but they are not text anyone can print.
    st.sampled_from(["\ud800", "a\udfff", "\udbffA"]).map(
        lambda s: Doc(json.dumps(s), ok=False, value=s)
    ),
    st.integers(1, 3000).map(_nested),
)
KEYS = st.one_of(
    st.sampled_from(["ref", "registry", "private", "config", "arch", "amd64", "auths", "auth"]),
    st.text(max_size=6),
)
DOCS = st.recursive(
    LEAVES,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5).map(_list),
        st.lists(st.tuples(KEYS, kids), max_size=5).map(_object),
    ),
    max_leaves=12,  # generating bigger trees costs more than it finds: depth comes from _nested
)


def same(a: object, b: object) -> bool:
    """Equal, and of the same JSON types all the way down (True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@examples(1200)
@given(doc=DOCS, bom=st.booleans(), as_bytes=st.booleans())
def test_generated_documents(doc: Doc, bom: bool, as_bytes: bool) -> None:
    text = "\ufeff" * bom + doc.text
    source = text.encode("utf-8", "surrogatepass") if as_bytes else text
    if doc.ok:
        assert same(loads(source), doc.value)
    else:
        with pytest.raises(JsonError):
            loads(source)
    if doc.ok:
        check_config(ConfigFiles("cfg/image.config", text, None, None))
        check_secret(text.encode())


# --- well-formed JSON with plausible and implausible values: the entry parser's every path ---

GOOD_REFS = st.sampled_from(
    [
        "busybox",
        "q.io/app:1",
        "docker.io/library/ubuntu:xenial",
        "index.docker.io/ppc64le/ubuntu",
        "localhost:5000/a/b@sha256:" + "a" * 64,
        "[::1]:5000/x:y",
        "q.io:5000/team/tool:v1.2",
    ]
)
BAD_REFS = st.sampled_from(["Upper/case", "a:b:c", "https://q.io/a", " busybox", "", "a@sha256:1"])
REFS = GOOD_REFS | BAD_REFS | st.text(alphabet="abz09._-/:@", max_size=24)
GOOD_HOSTS = st.sampled_from(
    ["docker.io", "index.docker.io", "https://index.docker.io/v1/", "q.io:5000", "[::1]:5000"]
)
HOSTS = GOOD_HOSTS | st.text(alphabet="aq.:-/ 9", max_size=12)
GOOD_ARCHES = st.sampled_from(["amd64", "x86_64", "aarch64", "arm64", "ppc64le", "s390x"])
ODD_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text())
ODD = ODD_LEAF
ARCHES = GOOD_ARCHES | st.sampled_from(["mips", "", " AMD64 "]) | st.text(max_size=4)
SECRETS = st.sampled_from(["jarvice-docker", "reg", "a.b-c"])
LABEL_KEYS = st.sampled_from(["gpu", "mem", "nvidia.com/gpu.present", "a_b.c-d"])
LABEL_VALUES = st.sampled_from(["nvidia", "1t", "", "true", "A-1_b.2"])
GOOD_EXPRESSION = st.one_of(
    st.fixed_dictionaries(
        {
            "key": LABEL_KEYS,
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(LABEL_VALUES, min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {"key": LABEL_KEYS, "operator": st.sampled_from(["Exists", "DoesNotExist"])}
    ),
)
WILD_KEYS = (
    LABEL_KEYS | st.sampled_from(["", "a/b/c", "UP/x", "-x", "x" * 64]) | st.text(max_size=6)
)
WILD_EXPRESSION = st.fixed_dictionaries(
    {},
    optional={
        "key": WILD_KEYS | ODD_LEAF,
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "in"])
        | ODD_LEAF,
        "values": st.lists(LABEL_VALUES | ODD_LEAF, max_size=3) | ODD_LEAF,
        "odd": ODD_LEAF,
    },
)
GOOD_ENTRY = st.fixed_dictionaries(
    {"ref": GOOD_REFS},
    optional={
        "registry": GOOD_HOSTS,
        "private": st.booleans(),
        "config": SECRETS,
        "arch": st.dictionaries(GOOD_ARCHES, GOOD_REFS, max_size=3),
        "nodeSelector": st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=3),
        "matchExpressions": st.lists(GOOD_EXPRESSION, max_size=3),
        "priority": st.integers(-(2**31), 2**31 - 1),
    },
)
WILD_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "ref": REFS | ODD,
        "registry": HOSTS | ODD,
        "private": st.booleans() | ODD,
        "config": SECRETS | st.sampled_from(["../etc", "UP", ""]) | ODD,
        "arch": st.dictionaries(ARCHES, REFS | ODD, max_size=4) | ODD,
        "nodeSelector": st.dictionaries(WILD_KEYS, LABEL_VALUES | ODD, max_size=3) | ODD,
        "matchExpressions": st.lists(GOOD_EXPRESSION | WILD_EXPRESSION | ODD, max_size=3) | ODD,
        "priority": st.integers() | ODD,
        "surprise": ODD,
    },
)
# Mostly good entries (7 in 10), so that whole configs are often accepted and checked as models.
ENTRY = st.integers(0, 9).flatmap(lambda n: GOOD_ENTRY if n < 7 else WILD_ENTRY if n < 9 else ODD)


@examples(1000)
@given(entries=st.lists(ENTRY, max_size=5), interval=st.sampled_from([None, "60", "0"]))
def test_generated_entries(entries: list[object], interval: str | None) -> None:
    text = json.dumps(entries)
    interval_file = None if interval is None else "cfg/interval"
    files = ConfigFiles("cfg/image.config", text, interval_file, interval)
    event(type(check_config(files)).__name__)


# --- mutations of real files --------------------------------------------------------------------

# (operation, position, argument): plain integers, which hypothesis draws several times faster
# than a union of tagged tuples; `mutate` reads each argument for its operation.
OPERATIONS = ("set", "truncate", "insert", "delete", "repeat")
MUTATIONS = st.lists(
    st.tuples(
        st.integers(0, len(OPERATIONS) - 1), st.integers(0, 1 << 20), st.integers(0, 1 << 16)
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """DATA with each operation applied: set a byte, truncate, insert a nasty fragment, delete
    or repeat a span."""
    b = bytearray(data)
    for op, position, arg in ops:
        i = position % (len(b) + 1)
        name = OPERATIONS[op]
        if name == "set" and b:
            b[i % len(b)] = arg % 256
        elif name == "truncate":
            del b[i:]
        elif name == "insert":
            b[i:i] = FRAGMENTS[arg % len(FRAGMENTS)]
        elif name == "delete":
            del b[i : i + 1 + arg % 40]
        elif name == "repeat":
            b[i:i] = b[i : i + 1 + arg % 40]
    return bytes(b)


INTERVAL_BYTES = st.one_of(
    st.none(),
    st.sampled_from([b"300", b"2.5\n", b"\xef\xbb\xbf60", b"1e-300", b"-5", b"\xff", b""]),
    st.binary(max_size=30),
)


@examples(2000)
@given(
    base=st.sampled_from(CONFIGS),
    ops=MUTATIONS,
    interval=INTERVAL_BYTES,
    flag=st.sampled_from([None, 5.0]),
)
def test_mutated_image_config(
    base: bytes, ops: list[tuple[int, int, int]], interval: bytes | None, flag: float | None
) -> None:
    interval_file = "cfg/interval" if interval is not None else None
    try:
        files = decode_files("cfg/image.config", mutate(base, ops), interval_file, interval)
    except ConfigError as exc:
        (problem,) = exc.problems
        assert problem.file == "cfg/image.config"
        check_text(str(problem))
        return
    event(type(check_config(files, interval_flag=flag)).__name__)


@examples(2000)
@given(base=st.sampled_from(SECRET_BASES), ops=MUTATIONS)
def test_mutated_docker_config(base: bytes, ops: list[tuple[int, int, int]]) -> None:
    event(type(check_secret(mutate(base, ops))).__name__)


@examples(2500)
@given(data=st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    try:
        loads(data)
    except JsonError as exc:
        check_text(str(exc))
    try:
        files = decode_files("cfg/image.config", data, "cfg/interval", data)
    except ConfigError:
        pass
    else:
        check_config(files)
    check_secret(data)


SECONDS = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
SPACE = st.sampled_from(["", " ", "\n", "\r\n", "\t", "\v", "\u00a0"])


@examples(1500)
@given(
    text=st.one_of(
        st.text(max_size=30),
        st.builds(
            "{}{}{}{}".format,
            SPACE,
            st.integers(0, 10**8).map(str),
            st.sampled_from(["", ".", ".5", ".25", ".000001"]),
            SPACE,
        ),
        st.floats().map(repr),
        st.integers().map(str),
        st.sampled_from([text for text, _ in NASTY_INTERVALS.values()]),
    ),
    bounds=st.sampled_from([(1.0, MAX_INTERVAL), (0.01, 3600.0), (0.1, 86400.0)]),
)
def test_interval_texts(text: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    raw = text.strip(" \t\r\n")
    accept = len(raw) <= 24 and SECONDS.fullmatch(raw) is not None and low <= float(raw) <= high
    if accept:
        assert parse_interval(text, "src", minimum=low, maximum=high) == float(raw)
        return
    with pytest.raises(IntervalError) as info:
        parse_interval(text, "src", minimum=low, maximum=high)
    assert str(info.value).startswith("src: ")
    assert f"{low:g} to {high:g} seconds" in info.value.reason
    check_text(str(info.value))


# --- the bounded readers, on real files -------------------------------------------------------

KINDS = st.sampled_from(["missing", "directory", "fifo", "large", "devnull", "dangling", "loop"])
CONTENT = st.one_of(
    KINDS,
    st.binary(max_size=100),
    st.tuples(st.sampled_from(CONFIGS), MUTATIONS).map(lambda t: mutate(*t)),
)
SECRET_CONTENT = st.one_of(
    KINDS, st.tuples(st.sampled_from(SECRET_BASES), MUTATIONS).map(lambda t: mutate(*t))
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run CORO on a private loop: the test session's loop is not running in a sync test."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@examples(300)
@given(
    image=CONTENT,
    interval=CONTENT,
    volume=st.booleans(),
    secret=SECRET_CONTENT,
    other=SECRET_CONTENT,
)
def test_files_on_disk(
    scratch: Path, image: object, interval: object, volume: bool, secret: object, other: object
) -> None:
    d = Path(tempfile.mkdtemp(dir=scratch))
    try:
        files = {"image.config": image, "interval": interval}
        if volume and all(isinstance(v, bytes) or v == "missing" for v in files.values()):
            write_volume(d, {k: v for k, v in files.items() if isinstance(v, bytes)})
        else:
            for name, what in files.items():
                make(d / name, what)
        try:
            load_config(d, env={})
        except ConfigError as exc:
            check_rejected(exc, (str(d), str(d / "image.config"), str(d / "interval")))
        (d / SECRET).mkdir()
        make(d / SECRET / "config.json", secret)
        make(d / SECRET / ".dockerconfigjson", other)
        try:
            auth, _ = run(resolve(d, SECRET, HOST))
        except CredentialError as exc:
            check_credential_error(exc, invalid=False)
        else:
            assert auth.host == HOST
    finally:
        shutil.rmtree(d)


def test_bases_are_valid() -> None:
    """The mutations start from files jcp accepts, so they probe the edge, not only the outside."""
    for data in CONFIGS:
        config = check_config(decode_files("cfg/image.config", data, None, None))
        assert isinstance(config, Config)
        assert not config.warnings
    for data in SECRET_BASES:
        assert isinstance(check_secret(data), RegistryAuth), data
    assert B64 in SECRET_VALUES
