"""Image references and registry hosts, normalised in one place.

Everything that compares images (duplicates, "is it present"), or looks up credentials by
registry host, goes through here, so that `ubuntu`, `docker.io/library/ubuntu:latest` and
`index.docker.io/library/ubuntu` are one image and one host everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

# Grammar of github.com/distribution/reference, restricted to what registries accept.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$")
_MAX_NAME = 255


class InvalidReferenceError(ValueError):
    """A malformed image reference; the message says which part is wrong and why."""


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised image reference: registry host, repository path, and tag or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Registry and repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> bool:
        """A digest-pinned reference names content that can never change."""
        return self.digest is not None

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}"


def normalise_host(host: str) -> str:
    """Canonical form of a registry host as written in a config or a docker config.json key.

    Accepts `https://index.docker.io/v1/`-style keys (scheme and path are dropped).
    """
    h = host.strip()
    if "://" in h:
        h = h.split("://", 1)[1]
    h = h.split("/", 1)[0].lower()
    if h in _HUB_ALIASES:
        return DOCKER_HUB
    return h


def ambiguous_host(host: str) -> bool:
    """A host no image reference can name: without '.', ':' or brackets (and not `localhost`),
    `host/app` is read by Docker, containerd and the kubelet as Docker Hub's `host/app`."""
    return host != "localhost" and not any(c in host for c in ".:[")


def _ambiguous(text: str, registry: str) -> InvalidReferenceError:
    return InvalidReferenceError(
        f"{text!r}: registry host {registry!r} has no '.' or ':', so runtimes read "
        f"'{registry}/...' as a Docker Hub repository; write the host with its domain or port "
        f"(e.g. {registry}:5000), or the repository in lowercase for Docker Hub"
    )


def _looks_like_domain(component: str) -> bool:
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.startswith("[")
        or component != component.lower()
    )


def parse_reference(text: str, default_registry: str = DOCKER_HUB) -> ImageRef:
    """Parse and normalise an image reference the way `docker pull` reads it.

    `default_registry` is used when the reference names no registry host; Docker's own rule
    is docker.io, and an entry without `arch` qualifies its `ref` with its `registry`.
    """
    _check_text(text)
    ref, digest, tag = _split_digest_and_tag(text)
    registry, path = _split_host(text, ref, default_registry)
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    repository = "/".join(path)
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise InvalidReferenceError(
            f"{text!r}: repository name is longer than {_MAX_NAME} characters"
        )
    if digest is None and tag is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise InvalidReferenceError(f"expected a string, got {type(text).__name__}")
    ref = text.strip()
    if not ref:
        raise InvalidReferenceError("empty image reference")
    if ref != text:
        raise InvalidReferenceError(f"{text!r} has leading or trailing white space")
    if any(c.isspace() for c in ref):
        raise InvalidReferenceError(f"{ref!r} contains white space")
    if "://" in ref:
        raise InvalidReferenceError(f"{ref!r} has a URL scheme; write the registry host without it")


def _split_digest_and_tag(text: str) -> tuple[str, str | None, str | None]:
    ref, digest, tag = text, None, None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidReferenceError(
                f"{text!r}: digest {digest!r} is not 'sha256:' followed by 64 lowercase hex digits"
            )
    last_slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > last_slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(
                f"{text!r}: tag {tag!r} is invalid (letters, digits, '_', '.', '-'; "
                "at most 128; not starting with '.' or '-')"
            )
    if not ref:
        raise InvalidReferenceError(f"{text!r} has no repository name")
    return ref, digest, tag


def _split_host(text: str, ref: str, default_registry: str) -> tuple[str, list[str]]:
    """The registry host (normalised) and the repository's path components, checked."""
    parts = ref.split("/")
    if len(parts) > 1 and _looks_like_domain(parts[0]):
        registry, path = parts[0], parts[1:]
        if not _DOMAIN_RE.match(registry):
            raise InvalidReferenceError(
                f"{text!r}: registry host {registry!r} is not a valid host[:port]"
            )
    else:
        registry, path = default_registry, parts
    registry = normalise_host(registry)
    if ambiguous_host(registry):
        raise _ambiguous(text, registry)
    if not path or any(p == "" for p in path):
        raise InvalidReferenceError(f"{text!r} has an empty path component")
    for p in path:
        if not _PATH_COMPONENT_RE.match(p):
            why = "uppercase letters are not allowed" if p != p.lower() else "invalid characters"
            raise InvalidReferenceError(f"{text!r}: repository component {p!r}: {why}")
    return registry, path
