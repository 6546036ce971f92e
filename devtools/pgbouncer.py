"""PgBouncer in transaction-pooling mode in front of a PostgreSQL, for tests, benchmarks and make.

    pooler = PgBouncer(upstream_url, ROOT / ".data" / "pgbouncer-tests")
    url = pooler.start()   # postgresql://user@127.0.0.1:<port>/<db>; any database name works
    pooler.restart()       # killed hard (every connection drops) and started on the same port
    pooler.stop()          # or: with PgBouncer(upstream_url) as pooler: ...

It runs Debian's `pgbouncer` (1.18 on bookworm), installed with apt-get when missing and we are
root. It listens on 127.0.0.1 only, on a free port, and reaches the upstream as the client's
own user: the embedded server (`devdb`, a Unix socket) with trust, a `DATABASE_URL` with a
password through an auth file. A `*` entry passes every database name through, so
pytest-django's `CREATE DATABASE test_...` and the test database itself work through it.

Through PgBouncer 1.18 nothing that lives in a server session survives a transaction:
statements prepared on the server (set DB_PREPARE_THRESHOLD=0), `LISTEN`, session advisory
locks, `SET` (except the parameters PgBouncer itself tracks: client_encoding, DateStyle,
TimeZone, standard_conforming_strings, application_name), `WITH HOLD` cursors, temporary
tables. A startup `options` (`-c synchronous_commit=off`) is refused, not applied, unless the
caller lists "options" in `ignore_startup_parameters`, and then it is silently dropped.

Usage: ``python -m devtools.pgbouncer start|stop|status|url`` (one pooler per checkout, in
``.data/pgbouncer``, in front of ``DATABASE_URL`` or the embedded PostgreSQL). ``start`` prints
the pooler's URL on stdout. Exit codes: 0 ok, 1 failure, 3 ``status``/``url``: not running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from devtools import devdb
from devtools.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
CLI_DIR = ROOT / ".data" / "pgbouncer"
BINARIES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
IS_ROOT = os.geteuid() == 0
START_TIMEOUT = 20.0  # seconds for the daemon to answer a query through itself
STOP_TIMEOUT = 10.0  # seconds for it to exit after SIGTERM, before SIGKILL
INSTALL_TIMEOUT = 240  # seconds for each apt-get step, inside a test's time limit


class PgBouncerError(Exception):
    """PgBouncer is missing and cannot be installed, or did not start or stop in time."""


def log(message: str) -> None:
    """Progress on stderr (stdout is reserved for the URL)."""
    print(f"pgbouncer: {message}", file=sys.stderr, flush=True)


def _run(cmd: Sequence[str | Path], *, account=None, timeout: float = 60) -> str:
    """Run cmd (as account if given) as the embedded database's tooling does; its output."""
    try:
        return devdb.run(cmd, account, timeout=timeout)[1]
    except devdb.DevDBError as exc:
        raise PgBouncerError(str(exc)) from exc


def binary() -> str:
    """Return the pgbouncer executable, installing Debian's package first if it is missing."""
    found = shutil.which("pgbouncer") or next((b for b in BINARIES if os.access(b, os.X_OK)), None)
    if found:
        return found
    apt = shutil.which("apt-get")
    if not (IS_ROOT and apt):
        raise PgBouncerError(
            "pgbouncer is not installed. Install your distribution's package "
            "(Debian/Ubuntu: sudo apt-get install pgbouncer) and run this again."
        )
    log("installing Debian's pgbouncer package (apt-get)")
    lock = ["-o", "DPkg::Lock::Timeout=120"]
    _run([apt, *lock, "update", "-qq"], timeout=INSTALL_TIMEOUT)
    _run([apt, *lock, "install", "-y", "-qq", "pgbouncer"], timeout=INSTALL_TIMEOUT)
    found = next((b for b in BINARIES if os.access(b, os.X_OK)), None)
    if not found:
        raise PgBouncerError("apt-get installed pgbouncer but no pgbouncer executable was found")
    return found


def version() -> str:
    """The installed PgBouncer's version, e.g. "1.18.0"."""
    return _run([binary(), "--version"]).split()[1]


def _account():
    """As root, the system user that runs the embedded PostgreSQL (pgbouncer refuses root)."""
    return devdb.pg_account() if IS_ROOT else None


class Upstream:
    """The parts of a postgresql:// URL that the pooler needs."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise PgBouncerError(f"not a postgresql:// URL: {parts.scheme}://...")
        query = parse_qs(parts.query)
        self.host = unquote(parts.hostname or "") or query.get("host", [""])[0] or "/tmp"  # noqa: S108
        self.port = parts.port or int(query.get("port", ["5432"])[0])
        self.user = unquote(parts.username or "") or query.get("user", ["postgres"])[0]
        self.password = unquote(parts.password or "") or query.get("password", [""])[0]
        self.dbname = unquote(parts.path.lstrip("/")) or self.user
        self.sslmode = query.get("sslmode", [""])[0]  # PgBouncer speaks TLS to it likewise


def _quote_ini(value: str) -> str:
    """A value inside a [databases] connection string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PgBouncer:
    """One PgBouncer daemon, configured and logging in `directory`, owned by its starter."""

    def __init__(
        self,
        upstream: str,
        directory: Path | str | None = None,
        *,
        port: int | None = None,
        pool_size: int = 20,
        min_pool_size: int = 0,
        reserve_pool_size: int = 0,
        max_client_conn: int = 500,
        max_db_connections: int = 0,
        pool_mode: str = "transaction",
        ignore_startup_parameters: Sequence[str] = ("extra_float_digits",),
    ):
        self.upstream = Upstream(upstream)
        self.port = port
        self._directory = Path(directory) if directory else None
        self._owns_directory = directory is None  # named after the port, removed by stop()
        self.settings = {
            "pool_mode": pool_mode,
            "default_pool_size": pool_size,
            "min_pool_size": min_pool_size,
            "reserve_pool_size": reserve_pool_size,
            "max_client_conn": max_client_conn,
            "max_db_connections": max_db_connections,
            "ignore_startup_parameters": ",".join(ignore_startup_parameters),
        }

    # --- where things are ----------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        if self._directory is None:
            if self.port is None:
                raise PgBouncerError("the directory is known once the port is (after start)")
            self._directory = ROOT / ".data" / f"pgbouncer-{self.port}"
        return self._directory

    @property
    def pidfile(self) -> Path:
        return self.directory / "pgbouncer.pid"

    @property
    def logfile(self) -> Path:
        return self.directory / "pgbouncer.log"

    def url_for(self, dbname: str | None = None) -> str:
        """The URL of database `dbname` (default: the upstream's) through the pooler."""
        if self.port is None:
            raise PgBouncerError("not started")
        up = self.upstream
        auth = quote(up.user, safe="") + (f":{quote(up.password, safe='')}" if up.password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname or up.dbname, safe='')}"

    @property
    def url(self) -> str:
        return self.url_for()

    # --- configuration -------------------------------------------------------------------------
    def _config(self) -> str:
        up = self.upstream
        auth_type = "md5" if up.password else "trust"  # trust: the embedded server, loopback
        server = f"host={_quote_ini(up.host)} port={up.port}"
        lines = [
            "[databases]",
            f"* = {server}",  # every database name passes through, test databases included
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",  # loopback TCP only
            f"auth_type = {auth_type}",
            f"auth_file = {self.directory / 'userlist.txt'}",
            f"admin_users = {up.user}",
            f"stats_users = {up.user}",
            *([f"server_tls_sslmode = {up.sslmode}"] if up.sslmode else []),
            *(f"{key} = {value}" for key, value in self.settings.items()),
            # Bounded waits: a client waits at most this long for a server connection, a failed
            # server login is retried after 1 s (not 15), a server must connect within 5 s.
            "query_wait_timeout = 30",
            "client_login_timeout = 10",
            "server_connect_timeout = 5",
            "server_login_retry = 1",
            "server_idle_timeout = 60",
            "server_reset_query = DISCARD ALL",  # session mode only: transaction mode resets none
            f"logfile = {self.logfile}",
            f"pidfile = {self.pidfile}",
            "log_connections = 0",
            "log_disconnections = 0",
            "",
        ]
        return "\n".join(lines)

    def _write_config(self, account) -> Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        up = self.upstream
        files = {
            "pgbouncer.ini": self._config(),
            "userlist.txt": f'"{up.user}" "{up.password.replace(chr(34), chr(34) * 2)}"\n',
        }
        for name, text in files.items():
            path = d / name
            path.write_text(text)
            path.chmod(0o600)
        if account:
            for path in (d, *(d / name for name in files)):
                os.chown(path, *account)
            if self.logfile.exists():
                os.chown(self.logfile, *account)
        return d / "pgbouncer.ini"

    # --- lifecycle -----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The daemon's pid if it runs (a pgbouncer process, not a zombie), else None."""
        if self._directory is None and self.port is None:
            return None
        try:
            pid = int(self.pidfile.read_text().split()[0])
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, ValueError):
            return None
        return pid if exe.startswith("pgbouncer") and state not in ("Z", "X") else None

    def start(self) -> str:
        """Start the daemon (on `port`, or a free one) unless it runs; return its URL."""
        if self.pid():
            return self.url
        exe, account = binary(), _account()
        fixed, given = self.port is not None, self._directory
        for attempt in range(1 if fixed else 5):
            if not fixed:  # without a directory given, it is named after the port
                self.port, self._directory = free_port(), given
            try:
                self._launch(exe, account)
                return self.url
            except PgBouncerError:
                self._kill(signal.SIGKILL)
                if self._owns_directory:
                    shutil.rmtree(self.directory, ignore_errors=True)
                if fixed or attempt == 4:
                    raise
                log(f"port {self.port} was taken meanwhile; trying another")
        raise AssertionError("unreachable")

    def _launch(self, exe: str, account) -> None:
        ini = self._write_config(account)
        self.pidfile.unlink(missing_ok=True)  # stale after a SIGKILL; pgbouncer would refuse
        started = time.monotonic()
        _run([exe, "-d", "-q", ini], account=account, timeout=30)
        last, seen = None, False
        while time.monotonic() < started + START_TIMEOUT:
            alive = self.pid() is not None
            seen = seen or alive
            if not alive and (seen or time.monotonic() > started + 5):
                last = "it exited"  # e.g. the port was taken: "nowhere to listen on"
                break
            try:
                self.query("SELECT 1")
                return
            except Exception as exc:  # noqa: BLE001 - not up yet; reported on timeout
                last = exc
                time.sleep(0.1)
        raise PgBouncerError(
            f"pgbouncer on port {self.port} did not answer ({last}); its log ends with:\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def _kill(self, sig: int) -> None:
        """Send `sig` (then SIGKILL if it lingers) and wait until the daemon is gone."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.pid() == pid:
            if time.monotonic() > deadline:
                if sig == signal.SIGKILL:
                    raise PgBouncerError(f"pgbouncer (pid {pid}) survived SIGKILL")
                os.kill(pid, signal.SIGKILL)
                sig, deadline = signal.SIGKILL, time.monotonic() + STOP_TIMEOUT
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the daemon (immediate shutdown: open transactions are cut); no-op if stopped."""
        self._kill(signal.SIGTERM)
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def restart(self) -> None:
        """A pooler crash and restart: kill it (every client and server connection drops at
        once) and start it again on the same port with the same configuration."""
        self._kill(signal.SIGKILL)
        self._launch(binary(), _account())

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- talking to it -------------------------------------------------------------------------
    def connect(self, dbname: str | None = None, **kwargs):
        """A psycopg connection through the pooler (simple query protocol, autocommit)."""
        import psycopg

        up = self.upstream
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=up.user,
            password=up.password or None,
            dbname=dbname or up.dbname,
            connect_timeout=5,
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            prepare_threshold=None,
            **kwargs,
        )

    def query(self, sql: str, dbname: str | None = None) -> list[tuple]:
        """Run one statement through the pooler on a fresh connection; return its rows."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    def admin(self, command: str) -> list[dict]:
        """Run an admin console command (SHOW POOLS, KILL db, RECONNECT db...); rows as dicts."""
        with self.connect("pgbouncer") as conn, conn.cursor() as cur:
            cur.execute(command)
            if not cur.description:
                return []
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close_database(self, dbname: str) -> None:
        """Close the pooler's server connections to `dbname` (before dropping it): KILL drops
        them and pauses the name, RESUME lets new clients in again."""
        self.admin(f'KILL "{dbname}"')
        self.admin(f'RESUME "{dbname}"')


# --- the command line: one pooler per checkout, for make targets -------------------------------
def _cli_pooler(args: argparse.Namespace) -> PgBouncer:
    """The checkout's pooler: a new one for `start` (on its last port if it ran before), else
    the one that `start` recorded (its upstream URL and port, in its directory)."""
    directory = Path(os.environ.get("BIMRIDE_PGBOUNCER_DIR") or CLI_DIR).resolve()
    upstream, port = directory / "upstream", directory / "port"
    last_port = int(port.read_text()) if port.exists() else None
    if args.command != "start":
        url = upstream.read_text() if upstream.exists() else "postgresql://postgres@/postgres"
        return PgBouncer(url, directory, port=last_port)
    url = os.environ.get("DATABASE_URL") or devdb.start()
    pooler = PgBouncer(
        url,
        directory,
        port=args.port or last_port,
        pool_size=args.pool_size,
        max_client_conn=args.max_client_conn,
    )
    pooler.start()
    fd = os.open(upstream, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold a password
    with os.fdopen(fd, "w") as f:
        f.write(url)
    port.write_text(str(pooler.port))
    return pooler


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m devtools.pgbouncer")
    parser.add_argument("command", choices=["start", "stop", "status", "url"])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--max-client-conn", type=int, default=500)
    args = parser.parse_args(argv)
    try:
        pooler = _cli_pooler(args)
        running = pooler.pid() is not None
        if args.command == "start":
            log(f"PgBouncer {version()} ({pooler.settings['pool_mode']} pooling) on {pooler.url}")
            print(pooler.url, flush=True)
        elif args.command == "stop":
            log("stopping" if running else "not running")
            pooler.stop()
        elif args.command == "status":
            print("running" if running else "stopped")
            return 0 if running else 3
        elif running:
            print(pooler.url)
        else:
            return 3
    except PgBouncerError as exc:
        print(f"pgbouncer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
