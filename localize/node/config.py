"""The node's YAML file, validated like the pipeline files (``localize.config``).

Example (relative paths are relative to the file's folder)::

    ae_title: LOCALIZE            # this node's AE title (1-16 characters, PS3.5 AE VR)
    port: 11112                   # DICOM port it listens on
    host: 0.0.0.0                 # address to bind (default: all)
    storage: /var/lib/localize-node
    allowed_calling_ae_titles: [PACS]
    quiet_period_s: 30            # a study is complete after this long without an instance
    quota_gb: 50                  # received instances kept at most (then status 0xA700)
    pipeline: null                # default: chosen by tracer, as `localize run`
    timeout_s: 1800               # per run; memory_limit_gb: 6 per run
    retry: {first_s: 5, max_s: 600}  # backoff between attempts to a destination that is down
    destinations:                 # where each kind of result goes (one destination or a list)
      rtstruct: {ae_title: PLANNING, host: 10.0.0.5, port: 104}
      seg: {ae_title: PACS, host: 10.0.0.4, port: 104}
      registration: {ae_title: PACS, host: 10.0.0.4, port: 104}
      report: {ae_title: PACS, host: 10.0.0.4, port: 104}   # the report page as Secondary Capture
    tls: {cert: node.pem, key: node.key, ca: ca.pem}   # optional; both directions

Unknown keys and bad values raise ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localize.config import DICOM_EXPORTS, _expect, _read_yaml, load_pipeline
from localize.errors import ConfigError, LocalizeError

#: Results a destination can receive: the DICOM exports, and the report as a Secondary Capture image.
SENDABLE = DICOM_EXPORTS + ("report",)
_TOP_KEYS = {"ae_title", "port", "host", "storage", "allowed_calling_ae_titles", "quiet_period_s", "quota_gb",
             "pipeline", "timeout_s", "memory_limit_gb", "threads", "retry", "destinations", "tls"}
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 6.2: AE, no backslash or control characters


@dataclass(frozen=True)
class Destination:
    """A DICOM application entity results are sent to (C-STORE SCP)."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class Tls:
    """PEM files for TLS (stdlib ``ssl``); ``ca`` verifies the peer's certificate."""

    cert: Path
    key: Path
    ca: Path

    def server_context(self):
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def client_context(self):
        import ssl

        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.check_hostname = False  # DICOM peers are named by AE title and address, not by host name
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass(frozen=True)
class NodeConfig:
    """A validated node configuration. Times in seconds, sizes in GiB."""

    ae_title: str
    port: int
    storage: Path
    allowed_calling_ae_titles: tuple[str, ...]
    destinations: dict[str, tuple[Destination, ...]]
    host: str = "0.0.0.0"
    quiet_period_s: float = 30.0
    quota_gb: float = 50.0
    pipeline: str | None = None
    timeout_s: float = 1800.0
    memory_limit_gb: float = 6.0
    threads: int = 1
    retry_first_s: float = 5.0
    retry_max_s: float = 600.0
    tls: Tls | None = None
    source: str = field(default="", compare=False)

    @property
    def quota_bytes(self) -> int:
        return int(self.quota_gb * 2**30)

    @property
    def queue_path(self) -> Path:
        return self.storage / "queue.sqlite"


def load_node_config(path: str | Path) -> NodeConfig:
    """The node configuration in the YAML file ``path``; ``ConfigError`` naming the file and key otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such node configuration file", path)
    source = str(path)
    doc = _read_yaml(path.read_bytes(), source)
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}", source)
    for key in ("ae_title", "port", "storage", "allowed_calling_ae_titles", "destinations"):
        if key not in doc:
            raise ConfigError(f"{key} is required", source)
    base = path.resolve().parent
    allowed = _expect(doc["allowed_calling_ae_titles"], list, "allowed_calling_ae_titles", source)
    pipeline = doc.get("pipeline")
    if pipeline is not None:
        pipeline = _expect(pipeline, str, "pipeline", source)
        if pipeline.endswith((".yaml", ".yml")) or "/" in pipeline:
            pipeline = str(base / pipeline)
        try:
            load_pipeline(pipeline)
        except LocalizeError as exc:
            raise ConfigError(f"pipeline: {exc}", source) from None
    retry = _expect(doc.get("retry", {}), dict, "retry", source)
    if set(retry) - {"first_s", "max_s"}:
        raise ConfigError(f"unknown retry key(s) {sorted(set(retry) - {'first_s', 'max_s'})}", source)
    return NodeConfig(
        ae_title=_ae_title(doc["ae_title"], "ae_title", source),
        port=_port(doc["port"], "port", source),
        host=_expect(doc.get("host", "0.0.0.0"), str, "host", source),
        storage=base / _expect(doc["storage"], str, "storage", source),
        allowed_calling_ae_titles=tuple(_ae_title(v, "allowed_calling_ae_titles", source) for v in allowed),
        destinations=_destinations(doc["destinations"], source),
        quiet_period_s=_positive(doc.get("quiet_period_s", 30.0), "quiet_period_s", source),
        quota_gb=_positive(doc.get("quota_gb", 50.0), "quota_gb", source),
        pipeline=pipeline,
        timeout_s=_positive(doc.get("timeout_s", 1800.0), "timeout_s", source),
        memory_limit_gb=_positive(doc.get("memory_limit_gb", 6.0), "memory_limit_gb", source),
        threads=int(_positive(doc.get("threads", 1), "threads", source)),
        retry_first_s=_positive(retry.get("first_s", 5.0), "retry.first_s", source),
        retry_max_s=_positive(retry.get("max_s", 600.0), "retry.max_s", source),
        tls=_tls(doc["tls"], base, source) if doc.get("tls") is not None else None,
        source=source,
    )


def _ae_title(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not _AE_TITLE.match(value) or not value.strip():
        raise ConfigError(f"{key}: {value!r} is not an AE title (1-16 printable characters, no backslash)",
                          source)
    return value.strip()


def _port(value: Any, key: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ConfigError(f"{key} must be a port number (1-65535), not {value!r}", source)
    return value


def _positive(value: Any, key: str, source: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key} must be a positive number, not {value!r}", source)
    return float(value)


def _destinations(value: Any, source: str) -> dict[str, tuple[Destination, ...]]:
    _expect(value, dict, "destinations", source)
    out = {}
    for kind, entries in value.items():
        if kind not in SENDABLE:
            raise ConfigError(f"destinations: {kind!r} is not a result that can be sent; allowed: {list(SENDABLE)}",
                              source)
        entries = entries if isinstance(entries, list) else [entries]
        found = []
        for n, entry in enumerate(entries):
            where = f"destinations.{kind}" + (f"[{n}]" if len(entries) > 1 else "")
            _expect(entry, dict, where, source)
            if set(entry) != {"ae_title", "host", "port"}:
                raise ConfigError(f"{where} needs exactly ae_title, host and port", source)
            found.append(Destination(_ae_title(entry["ae_title"], f"{where}.ae_title", source),
                                     _expect(entry["host"], str, f"{where}.host", source),
                                     _port(entry["port"], f"{where}.port", source)))
        out[kind] = tuple(found)
    return out


def _tls(value: Any, base: Path, source: str) -> Tls:
    _expect(value, dict, "tls", source)
    if set(value) != {"cert", "key", "ca"}:
        raise ConfigError("tls needs exactly cert, key and ca (PEM files)", source)
    paths = {k: base / _expect(v, str, f"tls.{k}", source) for k, v in value.items()}
    for key, p in paths.items():
        if not p.is_file():
            raise ConfigError(f"tls.{key}: no such file {p}", source)
    return Tls(**paths)
