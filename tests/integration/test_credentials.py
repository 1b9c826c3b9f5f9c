"""Credentials from mounted dockerconfigjson secrets, and a real private pull with them."""

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, push_synthetic
from devstack.stack import AUTH_USER, Stack, write_docker_secret
from jcp.inputs.secrets import read_secret, resolve
from jcp.model.credentials import CredentialError, RegistryAuth, parse_docker_config
from jcp.runtime.docker import auth_header
from tests.support.helpers import image_present

PASSWORD = "s3cr3t-Value-42"


def cfg(auths: object) -> bytes:
    return json.dumps({"auths": auths}).encode()


def b64(text: str, *, pad: bool = True) -> str:
    out = base64.b64encode(text.encode()).decode()
    return out if pad else out.rstrip("=")


@pytest.mark.parametrize(
    "entry",
    [
        {"auth": b64(f"bob:{PASSWORD}")},
        {"username": "bob", "password": PASSWORD},
    ],
)
def test_auth_forms(entry: dict[str, str]) -> None:
    auth = parse_docker_config(cfg({"quay.io": entry}), "s", "quay.io")
    assert auth.username == "bob"
    assert auth.password is not None
    assert auth.password.startswith(PASSWORD)


def test_unpadded_base64() -> None:
    raw = b64("bob:pw1", pad=False)
    assert not raw.endswith("=")
    auth = parse_docker_config(cfg({"quay.io": {"auth": raw}}), "s", "quay.io")
    assert (auth.username, auth.password) == ("bob", "pw1")


def test_identity_token() -> None:
    auth = parse_docker_config(cfg({"q.io": {"identitytoken": "tok"}}), "s", "q.io")
    assert auth_header(auth) == {"identitytoken": "tok", "serveraddress": "q.io"}


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io"])
def test_docker_hub_spellings_are_one_host(key: str) -> None:
    auth = parse_docker_config(cfg({key: {"auth": b64("u:p")}}), "s", "docker.io")
    assert auth.username == "u"


def test_legacy_dockercfg_layout() -> None:
    data = json.dumps({"quay.io": {"auth": b64("u:p")}}).encode()
    assert parse_docker_config(data, "s", "quay.io").username == "u"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{not json", "invalid JSON at line 1"),
        (b"[]", "expected a JSON object"),
        (b'{"credsStore": "ecr-login"}', "credential helper"),
        (cfg({"ghcr.io": {"auth": b64("u:p")}}), "no entry for this host (it has: ghcr.io)"),
        (cfg({"quay.io": {"auth": "!!!" + PASSWORD}}), "not base64"),
        (cfg({"quay.io": {"auth": b64(PASSWORD)}}), "does not decode to 'user:password'"),
        (cfg({"quay.io": {"email": "x"}}), "has none of"),
    ],
)
def test_errors_name_secret_and_host_never_the_value(data: bytes, why: str) -> None:
    with pytest.raises(CredentialError) as info:
        parse_docker_config(data, "my-secret", "quay.io")
    text = str(info.value)
    assert why in text
    assert text.startswith("secret 'my-secret' for registry quay.io is invalid: ")
    assert info.value.invalid
    assert PASSWORD not in text
    assert PASSWORD not in repr(info.value)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"auths": {"quay.io": {"auth": ' + b"9" * 5000 + b"}}}", "longer than 100 digits"),
        (b'{"auths": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper than 64 levels"),
        (b'{"auths": {"quay.io": {"auth": NaN}}}', "NaN at line 1 column 32"),
        (b'{"auths": {}, "%s": 1, "%s": 2}' % (PASSWORD.encode(), PASSWORD.encode()),
         "duplicate key at line 1 column 37: a key may appear only once in an object"),
        (cfg({PASSWORD: {"auth": b64("u:p")}}), "(it has: none; 1 other key(s))"),
        (b'{"auths": {"quay.io": {"auth": "\xff"}}}', "not UTF-8 text"),
        (b"", "empty"),
        (b"{" + b" " * (1 << 20) + b"}", "larger than 1 MiB"),
    ],
    ids=["huge-number", "deep", "nan", "duplicate-key", "password-as-host", "utf8", "empty", "big"],
)  # fmt: skip
def test_hostile_files_are_invalid_secrets(data: bytes, why: str) -> None:
    """Issue 10: a 5000-digit `auth` crashed jcp; now any file is an invalid secret (no value)."""
    with pytest.raises(CredentialError) as info:
        parse_docker_config(data, "my-secret", "quay.io")
    assert str(info.value).startswith("secret 'my-secret' for registry quay.io is invalid: ")
    assert why in str(info.value)
    assert PASSWORD.lower() not in str(info.value).lower()


def test_bom_is_accepted() -> None:
    auth = parse_docker_config(
        b"\xef\xbb\xbf" + cfg({"quay.io": {"auth": b64("u:p")}}), "s", "quay.io"
    )
    assert (auth.username, auth.password) == ("u", "p")


def test_auth_repr_hides_values() -> None:
    auth = RegistryAuth("q.io", "bob", PASSWORD)
    assert PASSWORD not in repr(auth)
    assert PASSWORD not in str(auth)


async def test_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="secret not mounted") as info:
        await resolve(tmp_path, "absent", "quay.io")
    assert not info.value.invalid


@pytest.mark.parametrize("kind", ["directory", "fifo", "large", "unreadable", "not-a-directory"])
async def test_unreadable_secret_files(tmp_path: Path, kind: str) -> None:
    """Every way a mount can be wrong is a CredentialError naming the path; a FIFO never blocks."""
    path = tmp_path / "reg" / "config.json"
    if kind == "not-a-directory":
        (tmp_path / "reg").write_text("x")
    else:
        path.parent.mkdir()
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "large":
        with path.open("wb") as f:
            f.truncate((1 << 20) + 1)
    elif kind == "unreadable":
        path.symlink_to("/proc/self/mem")  # opens, and reading offset 0 fails with EIO
    with pytest.raises(CredentialError) as info:
        await read_secret(tmp_path, "reg", "q.io")
    expected = {
        "directory": f": cannot read {path}: not a regular file",
        "fifo": f": cannot read {path}: not a regular file",
        "large": f" is invalid: {path} is larger than 1 MiB, the most a Secret can hold",
        "unreadable": f": cannot read {path}: Input/output error",
        "not-a-directory": f": cannot read {path}: Not a directory",
    }
    assert str(info.value) == "secret 'reg' for registry q.io" + expected[kind]


async def test_dockerconfigjson_name_and_rotation(tmp_path: Path) -> None:
    write_docker_secret(tmp_path, "reg", "q.io", "u1", "p1", file=".dockerconfigjson")
    auth, fp1 = await resolve(tmp_path, "reg", "q.io")
    assert auth.username == "u1"
    write_docker_secret(tmp_path, "reg", "q.io", "u2", "p2", file=".dockerconfigjson")
    auth, fp2 = await resolve(tmp_path, "reg", "q.io")
    assert auth.username == "u2"
    assert fp1 != fp2


async def test_private_pull_through_real_daemon(
    stack: Stack,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    unique: Callable[[str], str],
) -> None:
    pushed = push_synthetic(auth_client, unique("private/app"), "v1")
    host = stack.auth_registry.host
    with pytest.raises(aiodocker.DockerError):
        await docker.images.pull(pushed.reference)  # no credentials: the registry says no
    auth, _ = await resolve(docker_root, "jarvice-docker", host)
    await docker.images.pull(pushed.reference, auth=auth_header(auth))
    assert await image_present(docker, pushed.reference)


async def test_wrong_password_is_refused_by_the_registry(
    stack: Stack,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    pushed = push_synthetic(auth_client, unique("private/app"), "v1")
    host = stack.auth_registry.host
    write_docker_secret(tmp_path, "bad", host, AUTH_USER, "wrong-password")
    auth, _ = await resolve(tmp_path, "bad", host)
    with pytest.raises(aiodocker.DockerError) as info:
        await docker.images.pull(pushed.reference, auth=auth_header(auth))
    assert "unauthorized" in str(info.value).lower(), str(info.value)
    assert not await image_present(docker, pushed.reference)
