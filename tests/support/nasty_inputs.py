"""Inputs that broke jcp or could: the nasty corpus, and the real files fuzzing mutates.

Shared by test_fuzz.py (parsers and readers) and test_validate_cli.py (the real CLI).
"""
# ruff: noqa: E501, RUF001
# E501: the corpus is a table, one case a line. RUF001: non-ASCII digits are the point.

import base64
import json
import os
from pathlib import Path

from jcp.model.jsonsafe import MAX_BYTES

SECRET = "my-secret"
HOST = "quay.io"
PASSWORD = "s3cr3t-Value-42"
TOKEN = "tok-Very-Secret-99"
B64 = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
SECRET_VALUES = (PASSWORD, TOKEN, B64)


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2).encode()


OK = b'[{"ref": "a"}]'
# The real files the mutations start from: the original README's example, and every key used.
CONFIGS = [
    _json(
        [
            {
                "ref": "ubuntu:xenial",
                "registry": "docker.io",
                "private": False,
                "config": "jarvice-docker",
                "arch": {
                    "amd64": "docker.io/library/ubuntu:xenial",
                    "ppc64le": "docker.io/ppc64le/ubuntu:xenial",
                },
            },
            {
                "ref": "fail-test",
                "registry": "docker.io",
                "private": True,
                "config": "jarvice-docker",
                "arch": {"amd64": "docker.io/kenhill/abc123:test"},
            },
        ]
    ),
    json.dumps(
        [
            {"ref": "busybox"},
            {"ref": "app:1", "registry": "q.io", "private": True, "config": "reg"},
            {"ref": "x", "arch": {"arm64": "x:2", "s390x": "x@sha256:" + "a" * 64}},
        ]
    ).encode(),
    _json(
        [
            {"ref": "cuda:12", "nodeSelector": {"nvidia.com/gpu.present": "true"}, "priority": 10},
            {
                "ref": "big:1",
                "matchExpressions": [
                    {"key": "mem", "operator": "In", "values": ["1t", "2t"]},
                    {"key": "spot", "operator": "DoesNotExist"},
                ],
                "priority": -5,
            },
        ]
    ),
]
SECRET_BASES = [
    _json({"auths": {HOST: {"auth": B64}}}),
    _json({"auths": {"https://quay.io/v1/": {"username": "bob", "password": PASSWORD}}}),
    _json({"auths": {"ghcr.io": {"auth": B64}, HOST: {"identitytoken": TOKEN}}}),
    _json({HOST: {"auth": B64, "email": "bob@example.com"}}),
]
# Inserted anywhere into a real file by the mutations.
FRAGMENTS = [
    b"[" * 100,
    b"{" * 70,
    b"]}",
    b"9" * 5000,
    b"-" + b"9" * 200,
    b"1e999",
    b"-1E+400",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xef\xbb\xbf",
    b'"\\ud800"',
    b'"\\u0000"',
    b'"ref": "x", "ref": "y", ',
    b'"\\u0072ef": 1, ',
    b'"auth": 1, "auth": 2, ',
    b'{"s3cr3t-Value-42": 1, "s3cr3t-Value-42": 2}',
    b",",
    b":",
    b'"',
    b"\\",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"1",
    b"\n",
    b"\x1b[31m",
    "\u202e".encode(),
    b'"' + b"a" * 3000 + b'"',
]

# id: (image.config, interval, what the error says or "ok"); str values are kinds of non-file.
NASTY_CONFIGS: dict[str, tuple[object, object, str]] = {
    "deep-lists": (b"[" * 5000 + b"]" * 5000, None, "nested deeper than 64 levels at line 1 column 65"),
    "deep-objects": (b'{"a": ' * 3000 + b"1" + b"}" * 3000, None, "nested deeper than 64 levels at line 1 column 385"),
    "huge-int": (b'[{"ref": "a", "private": ' + b"9" * 5000 + b"}]", None, "number longer than 100 digits at line 1 column 26"),
    "huge-negative-int": (b"[-" + b"9" * 5000 + b"]", None, "number longer than 100 digits at line 1 column 2"),
    "float-overflow": (b'[{"ref": "a", "private": 1e999}]', None, "number out of range at line 1 column 26"),
    "nan": (b'[{"ref": "a", "private": NaN}]', None, "NaN at line 1 column 26: not a JSON number"),
    "infinity": (b"[Infinity]", None, "Infinity at line 1 column 2: not a JSON number"),
    "minus-infinity": (b"[-Infinity]", None, "-Infinity at line 1 column 2: not a JSON number"),
    "invalid-utf8": (b'[{"ref": "caf\xe9"}]', None, "not UTF-8 text: invalid byte sequence at byte offset 13 (line 1 column 14)"),
    "overlong-utf8": (b'[{"ref": "\xc0\xaf"}]', None, "not UTF-8 text"),
    "utf8-surrogate": (b'[{"ref": "\xed\xa0\x80"}]', None, "not UTF-8 text"),
    "escaped-lone-surrogate": (b'[{"ref": "\\ud800"}]', None, "string with an unpaired surrogate escape at line 1 column 10"),
    "nul-byte": (OK + b"\x00", None, "NUL character at line 1 column 15"),
    "nul-in-string": (b'[{"ref": "a\x00b"}]', None, "NUL character at line 1 column 12"),
    "escaped-nul-in-ref": (b'[{"ref": "a\\u0000b"}]', None, "malformed image reference"),
    "object-root": (b'{"ref": "a"}', None, "expected a JSON list of image objects, got object"),
    "string-root": (b'"a"', None, "expected a JSON list of image objects, got string"),
    "empty": (b"", None, "empty: expected a JSON value"),
    "whitespace": (b" \n\t", None, "empty: expected a JSON value"),
    "duplicate-key": (b'[{"ref": "a",\n  "ref": "b"}]', None, 'duplicate key "ref" at line 2 column 3'),
    "duplicate-key-escaped": (b'[{"ref": "a", "\\u0072ef": "b"}]', None, 'duplicate key "ref" at line 1 column 15'),
    "duplicate-arch": (b'[{"ref": "a", "arch": {"amd64": "a:1", "amd64": "a:2"}}]', None, 'duplicate key "amd64"'),
    "too-large": (b"[" + b" " * MAX_BYTES + b"]", None, "larger than 1 MiB, the most a ConfigMap can hold"),
    "bom": (b"\xef\xbb\xbf" + OK, b"\xef\xbb\xbf60\r\n", "ok"),
    "directory": ("directory", None, "image.config: cannot read: is a directory, not a file"),
    "fifo": ("fifo", None, "image.config: cannot read: is a FIFO, not a file"),
    "device": ("devnull", None, "image.config: cannot read: is a character device, not a file"),
    "dangling-symlink": ("dangling", None, "image.config: cannot read: No such file or directory"),
    "symlink-loop": ("loop", None, "image.config: cannot read: Too many levels of symbolic links"),
    "interval-directory": (OK, "directory", "interval: cannot read: is a directory, not a file"),
    "interval-fifo": (OK, "fifo", "interval: cannot read: is a FIFO, not a file"),
    "interval-too-large-file": (OK, "large", "interval: larger than 1 MiB, the most a ConfigMap can hold"),
    "interval-5000-digits": (OK, b"9" * 5000, 'got "99999999999999999999..." (5000 characters)'),
    "interval-1e-300": (OK, b"1e-300", 'such as 300 or 2.5, from 1 to 604800 seconds (7 days); got "1e-300"'),
    "interval-negative": (OK, b"-5", 'got "-5"'),
    "interval-arabic-digits": (OK, "٣٠٠".encode(), 'got "\\u0663\\u0660\\u0660"'),
    "interval-not-utf8": (OK, b"\xff300", 'got "\\ufffd300"'),
    "interval-too-small": (OK, b"0.5", "0.5 seconds is out of range: expected 1 to 604800 seconds (7 days)"),
    "interval-too-large": (OK, b"604801", "604801 seconds is out of range"),
    "many-problems": (json.dumps([1] * 100000).encode(), None, "1 more problem(s) not shown (1 error(s)); stopped checking at entry 101 of 100000"),
    "control-characters": (json.dumps([{"ref": "\x1b[2J", "arch": {"amd64": "a:1"}, "\x1b[31m": 1, "registry": "\x07"}]).encode(), None, 'entry 0 ("\\u001b[2J"): key \'registry\': "\\u0007" is not a registry host'),
    "huge-ref": (json.dumps([{"ref": "a" * 500000 + "!"}]).encode(), None, "malformed image reference"),
    "single-label-registry": (json.dumps([{"ref": "app:1", "registry": "myregistry"}]).encode(), None, "key 'registry': 'myregistry' has no '.' or ':', so runtimes would read its images as Docker Hub's"),
    "selector-value-number": (json.dumps([{"ref": "a", "nodeSelector": {"gpu": 1}}]).encode(), None, "entry 0 (a): key 'nodeSelector.gpu': expected a label value string, got number 1"),
    "selector-key-control-characters": (json.dumps([{"ref": "a", "nodeSelector": {"\x1b[2J": "x"}}]).encode(), None, "key '\"nodeSelector.\\u001b[2J\"': not a label key: name \"\\u001b[2J\" of"),
    "selector-huge-value": (json.dumps([{"ref": "a", "nodeSelector": {"gpu": "v" * 500000}}]).encode(), None, "(500000 characters) is not a label value"),
    "selector-huge-key": (json.dumps([{"ref": "a", "nodeSelector": {"k" * 500000: "v"}}]).encode(), None, 'not a label key: name "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk..."'),
    "selector-deep-value": (b'[{"ref": "a", "nodeSelector": {"gpu": ' + b"[" * 60 + b"]" * 60 + b"}}]", None, "key 'nodeSelector.gpu': expected a label value string, got list"),
    "expressions-10000": (json.dumps([{"ref": "a", "matchExpressions": [{"key": "k", "operator": "Gt"}] * 10000}]).encode(), None, "9900 more problem(s) not shown (9900 error(s))"),
    "expression-operator-null": (json.dumps([{"ref": "a", "matchExpressions": [{"key": "k", "operator": None}]}]).encode(), None, "key 'matchExpressions[0].operator': expected one of In, NotIn, Exists, DoesNotExist; got null"),
    "priority-huge": (b'[{"ref": "a", "priority": ' + b"9" * 100 + b"}]", None, "key 'priority': 9999999999999999999999999999999999999999"),
    "priority-bool": (json.dumps([{"ref": "a", "priority": True}]).encode(), None, "key 'priority': expected a whole number, got boolean true"),
    "priority-exponent": (b'[{"ref": "a", "priority": 1e3}]', None, "key 'priority': expected a whole number, got number 1000.0"),
    "priority-nan": (b'[{"ref": "a", "priority": NaN}]', None, "NaN at line 1 column 27: not a JSON number"),
    "uppercase-host-ref": (json.dumps([{"ref": "Upper/case:1", "registry": "docker.io"}]).encode(), None, "registry host 'upper' has no '.' or ':', so runtimes read 'upper/...' as a Docker Hub repository"),
}  # fmt: skip

# id: (dockerconfigjson bytes, what the error says or "ok"). No message may show a value.
NASTY_SECRETS: dict[str, tuple[bytes, str]] = {
    "auth-5000-digits": (b'{"auths": {"quay.io": {"auth": ' + b"9" * 5000 + b"}}}", "number longer than 100 digits at line 1 column 32"),
    "deep-nesting": (b'{"auths": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper than 64 levels"),
    "nan-auth": (b'{"auths": {"quay.io": {"auth": NaN}}}', "NaN at line 1 column 32"),
    "float-overflow-password": (b'{"auths": {"quay.io": {"username": "bob", "password": 1e999}}}', "number out of range"),
    "duplicate-host": (b'{"auths": {"quay.io": {"auth": "%s"},\n "quay.io": {}}}' % B64.encode(), "duplicate key at line 2 column 2"),
    "duplicate-key-is-the-password": (b'{"auths": {}, "%s": 1, "%s": 2}' % (PASSWORD.encode(), PASSWORD.encode()), "duplicate key at line 1 column 37"),
    "password-as-host": (_json({"auths": {PASSWORD: {"auth": B64}}}), "no entry for this host (it has: none; 1 other key(s))"),
    "invalid-utf8": (b'{"auths": {"quay.io": {"auth": "\xff"}}}', "not UTF-8 text: invalid byte sequence at byte offset 32"),
    "nul": (b'{"auths": {}}\x00', "NUL character at line 1 column 14"),
    "lone-surrogate-password": (_json({"auths": {HOST: {"username": "bob", "password": "\ud800"}}}), "string with an unpaired surrogate escape"),
    "bom": (b"\xef\xbb\xbf" + _json({"auths": {HOST: {"auth": B64}}}), "ok"),
    "empty": (b"", "empty: expected a JSON value"),
    "array-root": (b"[]", "expected a JSON object with an 'auths' object"),
    "too-large": (b"{" + b" " * MAX_BYTES + b"}", "larger than 1 MiB, the most a ConfigMap or Secret can hold"),
    "auth-not-base64": (_json({"auths": {HOST: {"auth": "!!!" + PASSWORD}}}), "not base64"),
    "auth-is-a-number": (_json({"auths": {HOST: {"auth": 5}}}), "has none of 'auth'"),
    "credential-helper": (_json({"credsStore": "ecr-login"}), "credential helper"),
}  # fmt: skip

# id: (interval text, what the error says). Every message also gives the bounds.
NASTY_INTERVALS: dict[str, tuple[str, str]] = {
    "tiny-exponent": ("1e-300", 'got "1e-300"'),
    "negative": ("-5", 'got "-5"'),
    "plus-sign": ("+5", 'got "+5"'),
    "arabic-digits": ("٣٠٠", 'got "\\u0663\\u0660\\u0660"'),
    "fullwidth-digits": ("３００", 'got "\\uff13\\uff10\\uff10"'),
    "5000-digits": ("9" * 5000, "(5000 characters)"),
    "nan": ("nan", 'got "nan"'),
    "inf": ("inf", 'got "inf"'),
    "infinity": ("Infinity", 'got "Infinity"'),
    "empty": ("", "got nothing"),
    "blank": (" \r\n", "got nothing"),
    "underscore": ("1_000", 'got "1_000"'),
    "hex": ("0x10", 'got "0x10"'),
    "unit": ("5m", 'got "5m"'),
    "nul": ("30\x00", 'got "30\\u0000"'),
    "zero": ("0", "0 seconds is out of range"),
    "too-small": ("0.5", "0.5 seconds is out of range"),
    "too-large": ("604801", "604801 seconds is out of range"),
}


def make(path: Path, what: object) -> None:
    """Put WHAT at PATH: bytes as a file, or a named kind of non-file."""
    if what is None or what == "missing":
        return
    if isinstance(what, bytes):
        path.write_bytes(what)
    elif what == "directory":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "large":
        with path.open("wb") as f:
            f.truncate(MAX_BYTES + 1)
    elif what == "devnull":
        path.symlink_to("/dev/null")
    elif what == "dangling":
        path.symlink_to(path.parent / "nowhere")
    elif what == "loop":
        path.symlink_to(path.name)
    else:
        raise AssertionError(what)
