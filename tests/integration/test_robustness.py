"""Issue 10 on the real stack: hostile edits, cancelled pulls, watched secrets, SIGHUP, rate
limits, scale, and the small items, each seen the way an operator sees them (the process, its
log, /healthz, /metrics, /status, the daemon's image list)."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Iterator
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.images import MANIFEST_V2, RegistryClient, push_synthetic
from devstack.kubelet import write_volume
from devstack.proxy import ThrottleProxy
from devstack.ratelimit import HUB_MESSAGE, RateLimitedRegistry
from devstack.stack import AUTH_USER, Stack
from tests.support.helpers import entry, image_config, image_present, publish, push_via, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import get, samples, value, wait_http
from tests.support.secrets import secret_json

Start = Callable[..., JcpProcess]
UNCLOSED = re.compile(r"Unclosed (connection|client session)|ResourceWarning|Traceback")


async def metric(run: JcpProcess, name: str, **labels: str) -> float | None:
    assert run.http is not None
    return value(samples((await get(run.http + "/metrics"))[1]), name, **labels)


async def reloads(run: JcpProcess) -> float:
    ok = await metric(run, "jcp_config_reloads_total", result="ok") or 0
    return ok + (await metric(run, "jcp_config_reloads_total", result="rejected") or 0)


@pytest.fixture
def ratelimit(stack: Stack) -> Iterator[Callable[..., RateLimitedRegistry]]:
    made: list[RateLimitedRegistry] = []

    def make(**kwargs: object) -> RateLimitedRegistry:
        made.append(RateLimitedRegistry(stack.open_registry.host, **kwargs).start())  # type: ignore[arg-type]
        return made[-1]

    yield make
    for p in made:
        p.stop()


# -- 1. a sequence of bad edits ---------------------------------------------------------------

BIG = "1" * 5000
SECRET_BIG = "9" * 5000


def bad_cases(good: str) -> list[tuple[str, dict[str, str | bytes], str]]:
    """(what, files, what the rejection must say) for hostile but plausible edits. Where a
    lenient parser would accept the content, it is the good config plus the hostile part, so
    that accepting it shows."""
    entries = json.loads(good)
    nan = json.dumps([{**entries[0], "note": float("nan")}, *entries[1:]])
    dup = json.dumps(entries).replace('"ref": ', '"ref": "other:1", "ref": ', 1)
    return [
        ("5000 levels of nesting", {"image.config": "[" * 5000 + "]" * 5000}, r"nest|deep"),
        ("a 5000-digit integer", {"image.config": f'[{{"ref": {BIG}}}]'}, r"digit|large|long"),
        ("NaN", {"image.config": nan}, r"nan"),
        ("invalid UTF-8", {"image.config": b'[{"ref": "a\xff\xfe:1"}]'}, r"utf-?8"),
        ("NUL bytes", {"image.config": '[{"ref": "a\x00:1"}]'}, r"nul|control|\\u0000"),
        ("duplicate keys", {"image.config": dup}, r"(duplicate|twice|more than once).*ref"),
        ("a 2 MiB file", {"image.config": good + " " * (2 << 20)}, r"larg|big|size|bytes|mib"),
        ("interval 1e-300", {"image.config": good, "interval": "1e-300"}, r"interval"),
        ("a 5000-digit interval", {"image.config": good, "interval": BIG}, r"interval"),
        ("a non-list root", {"image.config": json.dumps(entries[0])}, r"list"),
    ]


async def test_bad_edits_keep_the_last_good_config(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    host, password = stack.auth_registry.host, stack.auth_registry.password or ""
    root = tmp_path / "docker"
    for name in ("good", "other"):
        write_volume(root / name, {".dockerconfigjson": secret_json(host, AUTH_USER, password)})
    a = push_synthetic(open_client, unique("a"), "1").reference
    p1 = push_synthetic(auth_client, unique("p1"), "1").reference
    p2 = push_synthetic(auth_client, unique("p2"), "1").reference
    good = image_config(
        [entry(a), entry(p1, private=True, config="good"), entry(p2, private=True, config="other")]
    )
    cfg = tmp_path / "config"
    write_volume(cfg, {"image.config": good, "interval": "1"})
    run = jcp("run", engine_args(cfg, root))
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done.*3 pulled", timeout=30)
    assert await metric(run, "jcp_config_last_reload_success") == 1
    problems: list[str] = []  # collected, so that one run shows every case that fails

    async def apply(files: dict[str, str | bytes], what: str) -> None:
        before = await reloads(run)
        write_volume(cfg, {"interval": "1", **files})
        await wait_for(functools.partial(_more, run, before), timeout=10, what=f"reload: {what}")

    rejected = 0
    for n, (what, files, says) in enumerate(bad_cases(good)):
        if n == 5:  # a good config in between: the gauge goes back to 1
            await apply({"image.config": good}, "the good config")
            assert await metric(run, "jcp_config_last_reload_success") == 1
        mark = len(run.lines())
        await apply(files, what)
        assert run.proc.poll() is None, f"jcp died on {what}:\n{run.text()}"
        assert (await get(base + "/healthz"))[0] == 200, what
        if await metric(run, "jcp_config_last_reload_success") != 0:
            problems.append(f"{what}: accepted")
            await apply({"image.config": good}, "the good config")  # before the next case
            continue
        rejected += 1
        said = "\n".join(run.lines()[mark:])
        if not re.search(says, said, re.IGNORECASE | re.DOTALL):
            problems.append(f"{what}: the rejection does not say {says!r}:\n{said[:600]}")
        if re.search(r"Traceback|BUG", said):
            problems.append(f"{what}: rejected by the last-resort handler:\n{said[:600]}")
        if (longest := max((len(x) for x in run.lines()[mark:]), default=0)) > 1000:
            problems.append(f"{what}: a log line of {longest} characters quotes the content")
    # The last content is bad: later sweeps and the watcher's polls must not log it again.
    # Six sweeps at an interval of 1 s also span one of the watcher's re-reads (every 5 s).
    sweeps = run.count(r"sweep \d+ done")
    await run.wait_line(r"sweep \d+ done", count=sweeps + 6, timeout=30)
    assert run.count(r"config rejected") == rejected
    assert await metric(run, "jcp_config_reloads_total", result="rejected") == rejected
    # ... and the last good config keeps pulling.
    await docker.images.delete(a, force=True)
    pulled = run.count(f"Pulled {re.escape(a)}")
    await run.wait_line(f"Pulled {re.escape(a)}", count=pulled + 1, timeout=15)
    # A bad secret fails only its own images, as `credentials`, without quoting it.
    bad_auth = '{"auths": {"%s": {"auth": %s}}}' % (host, SECRET_BIG)  # noqa: UP031 - JSON braces
    write_volume(root / "other", {".dockerconfigjson": bad_auth})
    line = await run.wait_line(rf"failed pulling {re.escape(p2)} .*: credentials: ", timeout=15)
    if not re.search(r"invalid|not valid", line):
        problems.append(f"secret with a 5000-digit auth: message does not say invalid: {line}")
    shutil.rmtree(root / "other")
    await run.wait_line(rf"failed pulling {re.escape(p2)} .*: credentials: .*not mounted")
    assert run.count(rf"failed pulling {re.escape(p1)}") == 0
    status = (await get(base + "/status"))[1]
    doc = {i["image"]: i for i in json.loads(status)["images"]}
    assert doc[p2]["last"]["reason"] == "credentials"
    assert doc[p1]["state"] == "cached"
    for text in (run.text(), status):
        assert SECRET_BIG[:50] not in text
        assert password not in text
    await apply({"image.config": good}, "the good config")
    assert await metric(run, "jcp_config_last_reload_success") == 1
    assert run.proc.poll() is None
    assert not problems, "\n".join(problems)


async def _more(run: JcpProcess, before: float) -> bool:
    return await reloads(run) > before


# -- 2. removed or changed images stop at once ------------------------------------------------


async def _downloading(base: str, ref: str) -> bool:
    """/status shows bytes of REF arriving: its pull is really in flight."""
    doc = json.loads((await get(base + "/status"))[1])
    return any(i["image"] == ref and i.get("progress", {}).get("bytes", 0) for i in doc["images"])


async def _cancel_latency(run: JcpProcess, ref: str, swap: Callable[[], object]) -> float:
    """Seconds from SWAP (a config edit) to the `Cancelled pulling REF` line."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    swap()
    await run.wait_line(f"Cancelled pulling {re.escape(ref)}", timeout=10)
    return loop.time() - started


async def test_removed_and_changed_images_stop_at_once(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=1 << 20)
    big = push_via(open_client, slow, unique("big"), 8 << 20)
    repo = unique("moved")
    old = push_via(open_client, slow, repo, 8 << 20)
    push_synthetic(open_client, repo, "2", layers=1, layer_size=1024)
    new = f"{slow.host}/{repo}:2"
    small = push_synthetic(open_client, unique("small"), "1").reference
    cfg = publish(tmp_path / "config", [entry(small), entry(big)])
    # ResourceWarnings shown: a cancelled pull must release its HTTP response at once.
    warn = {"PYTHONWARNINGS": "always::ResourceWarning", "PYTHONTRACEMALLOC": "5"}
    run = jcp("run", engine_args(cfg, docker_root), env=warn)
    base = await wait_http(run)

    await wait_for(lambda: _downloading(base, big), what=f"{big} downloading")
    removed = await _cancel_latency(run, big, lambda: publish(cfg, [entry(small)]))
    publish(cfg, [entry(small), entry(old)])
    await wait_for(lambda: _downloading(base, old), what=f"{old} downloading")
    changed = await _cancel_latency(run, old, lambda: publish(cfg, [entry(small), entry(new)]))
    print(f"cancel latency: entry removed {removed:.2f}s, reference changed {changed:.2f}s")
    await run.wait_line(f"Pulled {re.escape(new)}", timeout=20)
    assert removed < 1.5
    assert changed < 1.5
    assert not await image_present(docker, big)
    assert not await image_present(docker, old)
    m = samples((await get(base + "/metrics"))[1])
    assert value(m, "jcp_pulls_cancelled_total") == 2
    assert not [k for k in m if k[0] == "jcp_pulls_total" and ("image", big) in k[1]]
    assert not [k for k in m if k[0] == "jcp_pulls_total" and ("image", old) in k[1]]
    assert run.count(f"Pulled ({re.escape(big)}|{re.escape(old)})") == 0
    run.signal()
    assert await run.wait_exit() == 0
    assert not UNCLOSED.search(run.text()), run.text()


# -- 3. secret directories are watched --------------------------------------------------------


async def test_fixed_secret_pulls_within_seconds_not_next_sweep(
    tmp_path: Path,
    stack: Stack,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(auth_client, unique("fix"), "1").reference
    host = stack.auth_registry.host
    root = tmp_path / "docker"
    write_volume(root / "fixme", {".dockerconfigjson": secret_json(host, AUTH_USER, "wrong")})
    cfg = publish(tmp_path / "config", [entry(ref, private=True, config="fixme")], "300")
    run = jcp("run", engine_args(cfg, root))
    await run.wait_line(rf"failed pulling {re.escape(ref)} .*: auth: ")
    await run.wait_line(r"sweep 1 done")
    loop = asyncio.get_running_loop()
    fixed = loop.time()
    good = secret_json(host, AUTH_USER, stack.auth_registry.password or "")
    write_volume(root / "fixme", {".dockerconfigjson": good})
    await run.wait_line(f"Pulled {re.escape(ref)}", timeout=10)
    took = loop.time() - fixed
    print(f"fixed secret -> pulled in {took:.2f}s (interval 300 s)")
    assert took < 5
    assert await image_present(docker, ref)


# -- 4. SIGHUP --------------------------------------------------------------------------------


async def test_sighup_rereads_instead_of_killing(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("a"), "1").reference
    b = push_synthetic(open_client, unique("b"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)])
    run = jcp("run", engine_args(cfg, docker_root))
    await run.wait_line(r"sweep 1 done.*1 pulled")
    # An edit inside the current generation's directory, its mtime kept: the config directory
    # (watched without recursion, as kubelet's `..data` swaps need) sees no event for it.
    live = (cfg / "..data").resolve() / "image.config"
    stat = live.stat()
    live.write_text(image_config([entry(a), entry(b)]))
    os.utime(live, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    run.signal(signal.SIGHUP)
    await run.wait_line(r"SIGHUP: re-reading", timeout=5)
    await run.wait_line(r"config generation 2 loaded: 2 images", timeout=5)
    await run.wait_line(f"Pulled {re.escape(b)}", timeout=15)
    hup = run.lines().index(next(x for x in run.lines() if "SIGHUP: re-reading" in x))
    loaded = run.lines().index(next(x for x in run.lines() if "generation 2 loaded" in x))
    assert hup < loaded  # applied by the signal, not by a periodic re-read
    assert run.proc.poll() is None
    run.signal(signal.SIGTERM)
    assert await run.wait_exit(timeout=15) == 0
    assert not UNCLOSED.search(run.text()), run.text()


# -- 5. rate limits ---------------------------------------------------------------------------


async def test_rate_limited_registry_is_paused_not_hammered(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    ratelimit: Callable[..., RateLimitedRegistry],
    unique: Callable[[str], str],
) -> None:
    hub = ratelimit(allow=2, retry_after=30)
    refs = []
    for _ in range(10):
        repo = unique("rl")
        push_synthetic(open_client, repo, "1", layers=1, layer_size=1024)
        refs.append(f"{hub.host}/{repo}:1")
    other = push_synthetic(open_client, unique("free"), "1").reference
    cfg = publish(tmp_path / "config", [entry(r) for r in refs] + [entry(other)])
    run = jcp("run", [*engine_args(cfg, docker_root, concurrency=4), "--rate-limit-pause", "45"])
    base = await wait_http(run)
    line = await run.wait_line(rf"registry {re.escape(hub.host)} is rate-limiting pulls")
    print(f"jcp's pause line, with the daemon's words for a 429: {line}")
    await run.wait_line(f"Pulled {re.escape(other)}")  # other registries go on
    loop = asyncio.get_running_loop()
    first = hub.limited()[0].at
    # Nothing to wait for: what is checked is that nothing happens while 4 s of pause pass.
    await wait_for(lambda: loop.time() > first + 4, what="4 s of pause")
    during = [s for s in hub.seen if s.at >= first]
    tried = {s.path.split("/manifests/")[0] for s in during if "/manifests/" in s.path}
    print(f"requests during the pause: {len(during)} for {len(tried)} images (of 10)")
    assert len(tried) <= 4  # at most the pulls already in flight (concurrency 4)
    assert len(during) <= 3 * 4  # each: /v2/, HEAD, GET
    assert run.count(r"is rate-limiting pulls") == 1
    # The daemon relays Docker Hub's text as a 500 and drops Retry-After: --rate-limit-pause.
    assert HUB_MESSAGE[:40] in line
    assert "pausing all its pulls for 45s" in line
    m = samples((await get(base + "/metrics"))[1])
    assert value(m, "jcp_registry_rate_limited_total", registry=hub.host) == 1
    doc = json.loads((await get(base + "/status"))[1])
    assert not [i for i in doc["images"] if i["state"] == "failed"]


# -- 6. quiet and cheap at scale --------------------------------------------------------------

MANY = 1000


async def _many_tags(
    client: RegistryClient, docker: aiodocker.Docker, repo: str, count: int
) -> list[str]:
    """COUNT tags of one small image, in the registry (a manifest PUT each through the v2 API)
    and already in the daemon (tagged there), so that the first sweep is a steady one."""
    first = push_synthetic(client, repo, "0", layers=1, layer_size=1024).reference
    url = f"http://{client.host}/v2/{repo}/manifests/0"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Accept": MANIFEST_V2}) as resp,
    ):
        manifest = json.loads(await resp.read())
    await docker.images.pull(first)
    tags = [str(t) for t in range(1, count)]

    def put(part: list[str]) -> None:
        own = RegistryClient(client.host)  # one connection per thread
        try:
            for tag in part:
                own.put_manifest(repo, tag, manifest, MANIFEST_V2)
        finally:
            own.close()

    gate = asyncio.Semaphore(4)

    async def tag(t: str) -> None:
        async with gate:
            await docker.images.tag(first, repo=f"{client.host}/{repo}", tag=t)

    await asyncio.gather(
        *(asyncio.to_thread(put, tags[k::4]) for k in range(4)), *(tag(t) for t in tags)
    )
    return [first] + [f"{client.host}/{repo}:{t}" for t in tags]


def _image_series(text: str) -> list[tuple[str, str]]:
    return [
        (s.name, s.labels["image"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "image" in s.labels
    ]


async def test_quiet_and_cheap_at_1000_images(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    refs = await _many_tags(open_client, docker, unique("many"), MANY)
    cfg = publish(tmp_path / "config", [entry(r) for r in refs])
    run = jcp("run", engine_args(cfg, docker_root, concurrency=8))
    base = await wait_http(run)
    await run.wait_line(rf"sweep 1 done.*{MANY} up to date", timeout=90)
    lines = run.lines()
    start = next(i for i, x in enumerate(lines) if "config generation 1 loaded" in x)
    end = next(i for i, x in enumerate(lines) if re.search(r"sweep 1 done", x))
    steady = lines[start + 1 : end + 1]  # every image present: the sweep is a steady one
    print(f"log lines of one steady sweep at {MANY} images: {len(steady)}: {steady}")
    assert len(steady) <= 5
    text = (await get(base + "/metrics"))[1]
    per_image = len(_image_series(text)) / MANY
    print(f"metric series per image at {MANY} images: {per_image:g}")
    assert per_image <= 3
    assert "_created" not in text
    publish(cfg, [entry(r) for r in refs[:10]])
    await run.wait_line(r"config generation 2 loaded: 10 images")

    async def kept() -> set[str]:
        return {image for _, image in _image_series((await get(base + "/metrics"))[1])}

    # A scrape may be served for a moment from the body rendered before the change (the HTTP
    # surface renders at most a tenth of the time): the series follow within that moment.
    async def only_the_ten() -> bool:
        return await kept() == set(refs[:10])

    await wait_for(only_the_ten, 10, "the removed images' series gone")
    assert await kept() == set(refs[:10])


# -- 7. small items ---------------------------------------------------------------------------


async def test_readyz_without_image_config(tmp_path: Path, docker_root: Path, jcp: Start) -> None:
    cfg = tmp_path / "config"
    write_volume(cfg, {"interval": "300"})
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)

    async def says_why() -> bool:
        return "no valid config loaded yet" in (await get(base + "/readyz"))[1]

    await wait_for(says_why, what="/readyz to say why")
    status, text = await get(base + "/readyz")
    assert status == 503
    assert "has not answered" not in text
    assert (await get(base + "/healthz"))[0] == 200


async def test_no_unclosed_text_at_exit(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    good = push_synthetic(open_client, unique("ok"), "1").reference
    missing = f"{stack.open_registry.host}/{unique('gone')}:1"
    once = jcp(
        "once", engine_args(publish(tmp_path / "once", [entry(good), entry(missing)]), docker_root)
    )
    assert await once.wait_exit() == 1
    slow = proxy(rate=1 << 20)
    ref = push_via(open_client, slow, unique("slow"), 4 << 20)
    run = jcp("run", engine_args(publish(tmp_path / "run", [entry(ref)]), docker_root))
    base = await wait_http(run)
    await wait_for(lambda: _downloading(base, ref), what=f"{ref} downloading")
    run.signal(signal.SIGTERM)  # mid-pull: the stream to the daemon is cut
    assert await run.wait_exit(timeout=15) == 0
    for proc in (once, run):
        assert not UNCLOSED.search(proc.text()), proc.text()


def _screen(output: str, width: int) -> tuple[list[str], list[str]]:
    """What a WIDTH-column terminal shows after OUTPUT, and the rows that wrapped: enough of
    a VT100 for jcp's display (text, CR, LF, CSI n F, CSI J), with xterm's deferred wrap."""
    rows: list[str] = [""]
    wrapped: list[str] = []
    r = c = 0
    for m in re.finditer(r"\x1b\[(\d*)([A-Za-z])|(.)", output, re.DOTALL):
        code, ch = m.group(2), m.group(3)
        if code == "F":
            r, c = max(0, r - int(m.group(1) or 1)), 0
        elif code == "J":
            rows[r] = rows[r][:c]
            del rows[r + 1 :]
        elif ch == "\r":
            c = 0
        elif ch == "\n":
            r += 1
        elif ch is not None and ch.isprintable():
            if c >= width:
                wrapped.append(rows[r])
                r, c = r + 1, 0
            while len(rows) <= r:
                rows.append("")
            rows[r] = rows[r][:c].ljust(c) + ch + rows[r][c + 1 :]
            c += 1
        while len(rows) <= r:
            rows.append("")
    return rows, wrapped


async def test_progress_fits_a_narrow_terminal(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    docker_root: Path,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=2 << 20)
    refs = [push_via(open_client, slow, unique("a-rather-long-repository-name"), 2 << 20)]
    refs.append(push_via(open_client, slow, unique("b"), 2 << 20))
    cfg = publish(tmp_path / "config", [entry(r) for r in refs])
    master, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    env = {**os.environ, "DOCKER_HOST": stack.dockerd.host}
    env.pop("PULL_INTERVAL", None)
    args = ["once", *engine_args(cfg, docker_root), "--progress", "always"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "jcp", *args], stdin=child, stdout=child, stderr=child, env=env
    )
    os.close(child)
    try:
        raw = await asyncio.wait_for(asyncio.to_thread(_drain, master), timeout=60)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    output = raw.decode(errors="replace")
    shown, wrapped = _screen(output, 40)
    block = re.compile(r"↓|\[[#-]{5}")
    assert output.count("↓") > 0, output  # the display did draw pulls
    assert not [row for row in wrapped if block.search(row)], wrapped
    assert not [row for row in shown if block.search(row)], shown  # nothing stale left
    print(f"log lines wider than 40 columns (they wrap, as logs do): {len(wrapped)}")


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_bytes_not_undercounted_when_the_registry_dies(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    ratelimit: Callable[..., RateLimitedRegistry],
    unique: Callable[[str], str],
) -> None:
    registry = ratelimit(rate=1 << 20)
    repo = unique("dies")
    push_synthetic(open_client, repo, "1", layers=1, layer_size=8 << 20)
    cfg = publish(tmp_path / "config", [entry(f"{registry.host}/{repo}:1")])
    extra = ["--log-format", "json", "--retries", "0", "--pull-timeout", "5"]
    run = jcp("once", engine_args(cfg, docker_root, extra=extra))
    await wait_for(lambda: registry.bytes_sent > 3 << 20, what="3 MiB through the registry")
    registry.stop()  # 3 MiB into an 8 MiB layer
    sent = registry.bytes_sent
    assert await run.wait_exit(timeout=60) == 1
    failed = next(d for d in map(json.loads, run.lines()) if d.get("event") == "pull_failed")
    print(f"registry sent {sent} bytes; jcp reports {failed['bytes']} ({failed['reason']})")
    assert failed["bytes"] >= sent - (1 << 20)  # the daemon reports progress every 512 KiB at most
