"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on free loopback ports, for the node tests."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import requests

from helpers.tools import require_file, require_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_binary() -> str:
    return require_tool("Orthanc")


class Orthanc:
    """One Orthanc under ``folder``: ``start()``, REST helpers, ``stop()``. Ports are fixed at creation."""

    def __init__(self, folder: Path, aet: str, modalities: dict[str, tuple[str, int]] | None = None,
                 dicom_port: int | None = None):
        self.folder, self.aet = folder, aet
        self.http_port, self.dicom_port = free_port(), dicom_port or free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.modalities = {name: [ae, "127.0.0.1", port] for name, (ae, port) in (modalities or {}).items()}
        self.process: subprocess.Popen | None = None

    def start(self) -> Orthanc:
        self.folder.mkdir(parents=True, exist_ok=True)
        plugin = require_file("orthanc-dicomweb")
        config = {
            "Name": self.aet, "DicomAet": self.aet, "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "StorageDirectory": str(self.folder / "storage"), "IndexDirectory": str(self.folder / "index"),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomModalities": self.modalities,
            "Plugins": [str(plugin)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomScuTimeout": 10, "HttpTimeout": 30,
        }
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=2))
        self.log = open(self.folder / "orthanc.log", "ab")
        self.process = subprocess.Popen([orthanc_binary(), str(self.folder / "orthanc.json")],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "orthanc.log").read_text()[-2000:]
            try:
                if requests.get(f"{self.url}/system", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("Orthanc did not answer /system within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()

    def get(self, path: str):
        reply = requests.get(self.url + path, timeout=30)
        reply.raise_for_status()
        return reply.json() if "json" in reply.headers.get("content-type", "") else reply.content

    def post(self, path: str, body) -> dict:
        data = body if isinstance(body, bytes) else json.dumps(body)
        reply = requests.post(self.url + path, data=data, timeout=120)
        reply.raise_for_status()
        return reply.json()

    def upload(self, files) -> set[str]:
        """POST every file to /instances; the Orthanc IDs of their patients."""
        return {self.post("/instances", Path(f).read_bytes())["ParentPatient"] for f in files}

    def instances_of(self, modality: str) -> list[dict]:
        """Every stored instance of ``modality``, with its main DICOM tags."""
        found = self.post("/tools/find", {"Level": "Instance", "Query": {"Modality": modality}, "Expand": True})
        return found

    def store_to(self, modality: str, resources, synchronous: bool = True) -> dict:
        """Ask Orthanc to C-STORE ``resources`` (Orthanc IDs) to one of its DicomModalities."""
        return self.post(f"/modalities/{modality}/store",
                         {"Resources": sorted(resources), "Synchronous": synchronous})
