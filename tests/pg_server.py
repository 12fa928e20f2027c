"""A throw-away PostgreSQL server for tests and benchmarks: its own cluster in a temp folder, reached
only through a Unix socket in that folder (no TCP port, so it never meets another server), trust
authentication, removed with everything in it on stop().

It runs Debian's `postgresql` package binaries (/usr/lib/postgresql/<version>/bin; `make postgres`
installs them). PostgreSQL refuses to run as root, so under root the cluster belongs to the
`postgres` system user and its commands run through `runuser -u postgres --`.

    with PgServer() as url:      # postgresql://postgres@/postgres?host=/tmp/headlab-pg-…&port=5432
        ...

`python tests/pg_server.py` starts one, prints its URL and keeps it until Ctrl-C (for bench/load.py).
A cluster left behind by a process that was killed (its owner pid is gone) is removed by the next start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

PREFIX = "headlab-pg-"
PORT = 5432  # names the socket file only: the server listens on no TCP address
# Speed over durability: a test cluster is deleted afterwards, so it never needs to survive a crash.
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'32MB'",
    "max_connections": "100",
    "log_min_messages": "warning",
}
MISSING = ("PostgreSQL's server binaries (initdb, pg_ctl) are not installed, and the room store's tests "
           "need a real server: run `make postgres` (Debian's postgresql package), or "
           "`apt-get install postgresql`.")


class PgServerError(RuntimeError):
    """The throw-away server could not be set up; the message says what to do."""


def find_bin_dir(candidates: list[Path] | None = None) -> Path | None:
    """The newest folder holding initdb and pg_ctl: Debian's /usr/lib/postgresql/<version>/bin, else PATH."""
    if candidates is None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                          key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")])
        candidates = list(reversed(versions))
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process nobody has reaped yet (a zombie) is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class PgServer:
    """One throw-away cluster. start() -> URL; stop() removes it (both idempotent)."""

    def __init__(self, bin_dir: Path | None = None, parent: Path | None = None):
        self.bin_dir = bin_dir or find_bin_dir()
        self.parent = Path(parent or tempfile.gettempdir())
        self.root: Path | None = None
        self.url: str | None = None
        self._user: pwd.struct_passwd | None = None

    # ------------------------------------------------------------ running commands as the cluster's owner

    def _as_owner(self, *args: str | Path) -> list[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, *args: str | Path, timeout: float = 120) -> None:
        result = subprocess.run(self._as_owner(*args), cwd=self.root, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise PgServerError(f"{Path(str(args[0])).name} failed ({result.returncode}): "
                                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}")

    # ------------------------------------------------------------ life cycle

    def start(self) -> str:
        if self.url:
            return self.url
        if self.bin_dir is None:
            raise PgServerError(MISSING)
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                raise PgServerError("Running as root, the test server needs the `postgres` system user "
                                    "(PostgreSQL refuses root): install Debian's postgresql package "
                                    "(`make postgres`).") from None
        remove_leftovers(self.parent, self.bin_dir)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.parent))
        try:
            (self.root / "owner.pid").write_text(str(os.getpid()))
            if self._user is not None:
                os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
            data = self.root / "data"
            self._run(self.bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            settings = {**SETTINGS, "port": str(PORT), "unix_socket_directories": f"'{self.root}'"}
            with open(data / "postgresql.conf", "a", encoding="utf-8") as f:
                f.write("\n# headlab test server\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
            self._run(self.bin_dir / "pg_ctl", "-D", data, "-l", self.root / "server.log", "-w", "-t", "60",
                      "start")
        except BaseException:
            self.stop()
            raise
        self.url = f"postgresql://postgres@/postgres?host={quote(str(self.root), safe='')}&port={PORT}"
        return self.url

    def stop(self) -> None:
        root, self.root, self.url = self.root, None, None
        if root is None:
            return
        _stop_and_remove(root, self.bin_dir)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_and_remove(root: Path, bin_dir: Path | None) -> None:
    data = root / "data"
    if bin_dir is not None and (data / "postmaster.pid").exists():
        command = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, cwd=root, capture_output=True, timeout=60)
        if result.returncode != 0:  # pg_ctl could not: end the postmaster by its pid
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGQUIT)
                time.sleep(0.5)
    shutil.rmtree(root, ignore_errors=True)


def remove_leftovers(parent: Path, bin_dir: Path | None) -> list[Path]:
    """Clusters of this module whose owner process is gone (a killed test run): stopped and deleted."""
    removed = []
    for root in parent.glob(PREFIX + "*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            _stop_and_remove(root, bin_dir)
            removed.append(root)
    return removed


if __name__ == "__main__":
    with PgServer() as url:
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    sys.exit(0)
