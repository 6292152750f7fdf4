"""greenbench never downloads: the one test of whether a value names a remote resource.

Every value of a suite (``suite_checks``) and of a task's own dataset files is checked with
``is_url`` before anything could act on it; a task's package switches off its framework's own
network paths (the detection task: ``greenbench.tasks.detect.offline``).
"""

from __future__ import annotations

import re

# any scheme of two or more letters followed by ":/": http(s), ftp, s3, gs, hf, ul, rtsp, rtmp, tcp,
# file, ... One slash is enough: a framework downloads "https:/host/x" (pathlib's spelling of a URL).
# A one-letter scheme is a Windows drive ("C:/data"), not a URL.

_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]+:/")


def is_url(value: object) -> bool:
    """Whether ``value`` is a string that names a remote resource (``scheme://...``), which some
    library on greenbench's path (a task's framework, torch hub, fsspec) would try to fetch.

    ``file://`` counts too: greenbench takes plain local paths only, and a ``file:`` URL would
    be misread as a relative path.
    """
    return isinstance(value, str) and _URL.match(value) is not None
