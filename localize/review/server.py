"""``localize review OUT``: a local page to review a finished run.

Security model: the server binds 127.0.0.1 only, on a random port unless told; every
request path starts with ``/t/<token>/`` where the token is ``secrets.token_urlsafe(24)``,
made at start-up and printed in the URL only (a missing or wrong token: 403, compared in
constant time). Under the token it serves ``out/<file>`` from OUT and ``assets/<file>`` from
the packaged assets, each path resolved and refused (404) unless it stays inside its folder,
and the review actions (POST ``api/<action>``, JSON, see ``localize.review.actions``).
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from localize.errors import LocalizeError, StudyError
from localize.review.volumes import LABELS_FILE, PET_FILE, VOLUMES

ASSETS = Path(str(resources.files("localize.review").joinpath("assets")))
MAX_BODY_BYTES = 1 << 20


def check_output(out_dir: str | Path) -> Path:
    """``out_dir`` resolved, if it holds what the page needs (findings.json, PET volume, label map)."""
    out = Path(out_dir).resolve()
    for needed in (out / "findings.json", out / VOLUMES / PET_FILE, out / LABELS_FILE):
        if not needed.is_file():
            hint = "" if needed.name == "findings.json" else " (written by the run's viewer export)"
            raise StudyError(f"not found{hint}; is this a `localize run` output folder?", needed)
    return out


def inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` resolved, or None unless it is a file inside ``root``."""
    path = (root / relative).resolve()
    return path if path.is_file() and root.resolve() in path.parents else None


class ReviewServer:
    """The review server of one output folder; ``url`` holds the token."""

    def __init__(self, out_dir: str | Path, *, port: int = 0, reviewer: str = ""):
        from localize.review.actions import Review

        self.out = check_output(out_dir)
        self.token = secrets.token_urlsafe(24)
        self.review = Review(self.out, reviewer)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/t/{self.token}/"

    def start(self) -> ReviewServer:
        """Serve in a background thread (for notebooks and tests); returns self."""
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "localize-review"

        def log_message(self, *args) -> None:  # quiet: the terminal shows the URL only
            pass

        def _route(self) -> str | None:
            """The path after ``/t/<token>/``; None (after a 403) without the right token."""
            parts = urlsplit(self.path).path.split("/", 3)
            given = parts[2] if len(parts) > 2 and parts[1] == "t" else ""
            if not hmac.compare_digest(given.encode(), server.token.encode()):
                self._send(HTTPStatus.FORBIDDEN, b"forbidden\n", "text/plain")
                return None
            return unquote(parts[3]) if len(parts) > 3 else ""

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the page was closed mid-transfer
                pass

        def _json(self, doc, status: HTTPStatus = HTTPStatus.OK) -> None:
            self._send(status, json.dumps(doc).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            route = self._route()
            if route is None:
                return
            if route in ("", "index.html"):
                route = "assets/index.html"
            if route == "api/review":
                return self._json(server.review.state())
            folder, _, rest = route.partition("/")
            root = {"out": server.out, "assets": ASSETS}.get(folder)
            path = inside(root, rest) if root is not None and rest else None
            if path is None:
                return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            kind = "application/gzip" if path.name.endswith(".gz") else \
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._send(HTTPStatus.OK, path.read_bytes(), kind)

        def do_POST(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                return
            if not route.startswith("api/"):
                return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._json({"error": "request too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                return self._json(server.review.apply(route.removeprefix("api/"), body))
            except LocalizeError as exc:
                return self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            except (ValueError, KeyError, TypeError) as exc:
                return self._json({"error": f"bad request: {exc}"}, HTTPStatus.BAD_REQUEST)


    return Handler
