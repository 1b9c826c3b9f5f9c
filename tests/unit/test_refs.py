import pytest

from jcp.model.refs import ImageRef, InvalidReferenceError, normalise_host, parse_reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", "docker.io/library/ubuntu:latest"),
        ("ubuntu:xenial", "docker.io/library/ubuntu:xenial"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
        ("index.docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("registry-1.docker.io/ppc64le/ubuntu:xenial", "docker.io/ppc64le/ubuntu:xenial"),
        ("kenhill/abc123:test", "docker.io/kenhill/abc123:test"),
        ("quay.io/nimbix/jarvice-cache-pull", "quay.io/nimbix/jarvice-cache-pull:latest"),
        ("localhost:5000/app:1.0", "localhost:5000/app:1.0"),
        ("127.0.0.1:5000/a/b/c:v1.2-rc_3", "127.0.0.1:5000/a/b/c:v1.2-rc_3"),
        ("Registry.Example.com/app", "registry.example.com/app:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("ubuntu@sha256:" + "a" * 64, "docker.io/library/ubuntu@sha256:" + "a" * 64),
        ("q.io/x:1@sha256:" + "b" * 64, "q.io/x@sha256:" + "b" * 64),
    ],
)
def test_normalises(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_default_registry_qualifies_bare_names() -> None:
    ref = parse_reference("app:1", default_registry="10.0.0.1:5000")
    assert ref == ImageRef("10.0.0.1:5000", "app", "1")
    assert not ref.pinned
    assert parse_reference("app@sha256:" + "c" * 64).pinned


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (" ubuntu", "white space"),
        ("ubu ntu", "white space"),
        ("docker.io/kenhill/ABC123:test", "uppercase"),
        ("https://quay.io/x", "scheme"),
        ("ubuntu:", "tag ''"),
        ("ubuntu:-bad", "tag"),
        ("ubuntu@sha256:abc", "digest"),
        ("ubuntu@md5:" + "a" * 32, "digest"),
        ("quay.io//x", "empty path"),
        ("quay.io/", "empty path"),
        ("a/b_-c", "invalid characters"),
        ("x" * 300, "longer than"),
        ("bad_host:5000/x", "not a valid host"),
    ],
)
def test_rejects_with_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError, match=why):
        parse_reference(text)


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("Quay.IO", "quay.io"),
    ],
)
def test_hosts(key: str, host: str) -> None:
    assert normalise_host(key) == host
