#!/usr/bin/env python3
"""Brings up the local roomrec stack: moto, the template's tables/queues/buckets and roles (moto
then enforces IAM, each process calling AWS as its role), nginx-rtmp, the API gateway and a dev
credential.

  stack.py up              fixed ports (ROOMREC_AWS_PORT/RTMP_PORT/HTTP_PORT), state in .local/,
                           stays in the foreground until Ctrl-C / SIGTERM / `stack.py down`
  stack.py run [--with worker,deliverer,sweeper] -- CMD ...
                           free loopback ports and a temporary state dir; runs CMD with the
                           stack's environment and exits with CMD's exit code; --with also
                           runs the recording worker, the callback deliverer, the sweeper
  stack.py down            stops the stack started by `up`

Everything the functions see comes from template.yaml (Globals.Function.Environment), so the
local stack and the deployed one cannot drift. Run with the repo's .venv/bin/python.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from cfn import (BUCKET_TYPE, REGION, Identities, ResourceCreator, Resolver,
                 StackError, enforce_iam, function_environment, load_template, local_parameters)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
UP_STATE_DIR = ROOT / ".local"
VENV_BIN = ROOT / ".venv" / "bin"

DEV_ACCOUNT = "dev"

DEFAULT_PORTS = {"ROOMREC_AWS_PORT": 5000, "ROOMREC_RTMP_PORT": 1935, "ROOMREC_HTTP_PORT": 3000}
# The processes beside the API that `up` always runs and `run --with` runs on request: the
# recording worker, the callback deliverer (the Lambda's handler fed from the events queue)
# and the sweeper (`roomrec-admin sweep`, the scheduled function's use case in a loop).
SERVICES = ("worker", "deliverer", "sweeper")
# How often the sweeper runs: every minute as on AWS, but every 5 s in test stacks.
SWEEP_EVERY_SECS = {"up": 60, "run": 5}
READY_TIMEOUT_SECS = 60.0
# How often nginx-rtmp reports each live publisher to the hook: 5 s, so the tests see several;
# make bench-worker sets nginx-rtmp's own 30 s, as 200 publishers every 5 s would keep moto busy.
RTMP_UPDATE_SECS_VAR = "ROOMREC_RTMP_UPDATE_SECS"
DEFAULT_RTMP_UPDATE_SECS = 5
STOP_GRACE_SECS = 5.0
LOG_TAIL_LINES = 40
RTMP_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
PR_SET_PDEATHSIG = 1


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


def log(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if this script is SIGKILLed, the kernel
    # SIGTERMs the child, so no service outlives the stack.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:]) or "(empty log)"


class Child:
    """One service in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str],
                 cwd: Path, own_log: Path | None = None):
        self.name = name
        self.log_path = own_log or log_path  # where the service writes its diagnostics
        self.output_path = log_path
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def group_alive(self) -> bool:
        self.proc.poll()  # reap the leader so a zombie does not count
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def describe_death(self) -> str:
        text = (f"{self.name} exited with status {self.proc.returncode}; last lines of "
                f"{self.log_path}:\n{tail(self.log_path)}")
        if self.output_path != self.log_path and tail(self.output_path) != "(empty log)":
            text += f"\nand of {self.output_path}:\n{tail(self.output_path)}"
        return text


class Supervisor:
    """Owns the stack's children; stop() kills every one's process group, whatever happened."""

    def __init__(self):
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], log_path: Path, env: dict[str, str],
              own_log: Path | None = None) -> Child:
        log(f"starting {name}: {' '.join(argv)}")
        try:
            child = Child(name, argv, log_path, env, ROOT, own_log)
        except OSError as e:
            raise StackError(f"cannot start {name} ({argv[0]}): {e}") from e
        self.children.append(child)
        return child

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if not c.alive()), None)

    def stop(self) -> None:
        if not self.children:
            return
        # Nothing may interrupt the teardown half-way.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in reversed(self.children):
                child.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECS
            while time.monotonic() < deadline and any(c.group_alive() for c in self.children):
                time.sleep(0.1)
            for child in self.children:
                if child.group_alive():
                    log(f"{child.name} did not stop in {STOP_GRACE_SECS:.0f}s; killing it")
                    child.signal_group(signal.SIGKILL)
            for child in self.children:
                try:
                    child.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log(f"{child.name} (pid {child.proc.pid}) is still there after SIGKILL")
            self.children.clear()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def wait_until(what: str, child: Child, ready, timeout: float = READY_TIMEOUT_SECS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive():
            raise StackError(f"{what} did not come up: {child.describe_death()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout:.0f}s; last lines of "
                             f"{child.log_path}:\n{tail(child.log_path)}")
        time.sleep(0.2)


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_answers(url: str) -> bool:
    try:
        with _NO_PROXY_OPENER.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any status means the server is up
    except (urllib.error.URLError, OSError):
        return False


def tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def check_port_free(name: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise StackError(f"port {port} ({name}) is taken: {e}; is a stack already up "
                             f"(`make down`), or set {name} to another port") from e


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------

def rtmp_module() -> str:
    for directory in RTMP_MODULE_DIRS:
        candidate = Path(directory) / "ngx_rtmp_module.so"
        if candidate.exists():
            return str(candidate)
    raise StackError("ngx_rtmp_module.so not found in " + " or ".join(RTMP_MODULE_DIRS)
                     + "; run `make install` (it installs libnginx-mod-rtmp)")


def rtmp_update_secs() -> int:
    raw = os.environ.get(RTMP_UPDATE_SECS_VAR) or str(DEFAULT_RTMP_UPDATE_SECS)
    try:
        return max(1, int(raw))
    except ValueError:
        raise StackError(f"{RTMP_UPDATE_SECS_VAR}={raw!r} is not a number of seconds") from None


def nginx_config(state: Path, rtmp_port: int, http_port: int, hook_token: str) -> str:
    hook = f"http://127.0.0.1:{http_port}/v2/hooks/nginx-rtmp/{hook_token}"
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""# Generated by infra/local/stack.py; edits are lost on the next start.
load_module {rtmp_module()};
{user}daemon off;
master_process on;
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/nginx-error.log info;

# nginx's default 512 connections would not hold make bench-worker at N = 200: 200
# publishers, 200 players and the hook's requests.
events {{
    worker_connections 2048;
}}

rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;

        application live {{
            live on;
            record off;
            # Players of a stream whose publisher left are disconnected at once, so a
            # recorder notices the pause now rather than after its read timeout.
            idle_streams off;
            on_publish {hook};
            on_publish_done {hook};
            # Every live publisher is reported again, so a stream whose media server died
            # without its publish_done can be replaced (README, "Media-server hook"); every
            # 5 s here rather than nginx-rtmp's 30 s, so the tests see several
            # ({RTMP_UPDATE_SECS_VAR} sets it).
            on_update {hook};
            notify_update_timeout {rtmp_update_secs()}s;
        }}
    }}
}}
"""


def binary(env_name: str, default: str) -> str:
    return os.environ.get(env_name) or str(ROOT / default)


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def write_env_file(path: Path, env: dict[str, str]) -> None:
    lines = ["# Generated by infra/local/stack.py. Use: . " + str(path)]
    lines += [f"export {k}={shell_quote(v)}" for k, v in env.items()]
    path.write_text("\n".join(lines) + "\n")


def admin_binary() -> str:
    admin = binary("ROOMREC_ADMIN_BIN", "target/debug/roomrec-admin")
    if not os.path.exists(admin):
        raise StackError(f"{admin} is missing; run `cargo build --workspace --bins` "
                         f"(`make build` does)")
    return admin


def run_admin(env: dict[str, str], extra: list[str]) -> dict:
    argv = [admin_binary(), "create-credential", "--account", DEV_ACCOUNT, *extra]
    result = subprocess.run(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise StackError(f"{' '.join(argv[:4])} failed with status {result.returncode}:\n"
                         f"{result.stderr.strip()}\n{result.stdout.strip()}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        credential = json.loads(lines[-1])
        if not credential.get("key_id") or not credential.get("secret"):
            raise ValueError("no key_id/secret")
    except (IndexError, ValueError) as e:
        raise StackError(f"roomrec-admin printed no credential JSON as its last line ({e}):\n"
                         f"{result.stdout}") from e
    return credential


def exempt_loopback_from_proxies() -> None:
    """Loopback traffic (ours, boto3's, the children's) never goes through a proxy."""
    for key in ("NO_PROXY", "no_proxy"):
        parts = [p for p in os.environ.get(key, "").split(",") if p]
        os.environ[key] = ",".join(
            parts + [h for h in ("127.0.0.1", "localhost") if h not in parts])


def child_environment(stack_env: dict[str, str]) -> dict[str, str]:
    """The parent's environment with the stack's on top, minus what would override it."""
    env = dict(os.environ)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(key, None)
    return {**env, **stack_env}


def start_stack(sup: Supervisor, state: Path, ports: dict[str, int], mode: str,
                services: tuple[str, ...]) -> dict:
    """Starts every service (and `services` of SERVICES); returns the environment the stack
    exports."""
    aws_port = ports["ROOMREC_AWS_PORT"]
    rtmp_port = ports["ROOMREC_RTMP_PORT"]
    http_port = ports["ROOMREC_HTTP_PORT"]

    gateway = binary("ROOMREC_GATEWAY_BIN", "target/debug/roomrec-gateway")
    if not os.path.exists(gateway):
        raise StackError(f"{gateway} is missing; run `cargo build --workspace --bins` "
                         f"(`make build` does)")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise StackError("nginx is not installed; run `make install`")

    for old_log in state.glob("*.log"):
        old_log.unlink()

    # a. moto, with AWS's managed policies (SAM attaches some to the functions' roles)
    moto = sup.start("moto", [str(VENV_BIN / "python"), str(ROOT / "infra/local/moto_iam.py"),
                              "-H", "127.0.0.1", "-p", str(aws_port)], state / "moto.log",
                     {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"})
    wait_until("moto", moto, lambda: http_answers(f"http://127.0.0.1:{aws_port}/"))

    # b. tables, queues, buckets; the roles, an operator, each role's credentials; then moto
    # enforces IAM, so a call a role's policies do not allow fails as it would on AWS.
    template = load_template(TEMPLATE)
    hook_token = secrets.token_hex(16)
    resolver = Resolver(template, local_parameters(template, hook_token, rtmp_port))
    for line in ResourceCreator(template, resolver, aws_port).create_all():
        log(f"created {line}")
    identities = Identities(template, resolver, aws_port)
    for line in identities.create_roles():
        log(f"created {line}")
    operator = identities.operator()
    roles = identities.role_credentials()
    roles_file = state / "roles.json"
    roles_file.write_text(json.dumps(roles, indent=1) + "\n")
    roles_file.chmod(0o600)
    enforce_iam(aws_port)
    log(f"IAM enforced; roles of {', '.join(sorted(roles))} in {roles_file}")

    # c. the functions' environment
    env = function_environment(template, resolver)
    buckets = [lid for lid, r in template.get("Resources", {}).items()
               if r.get("Type") == BUCKET_TYPE]
    env.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{aws_port}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **operator,
        "ROOMREC_ROLES_FILE": str(roles_file),
        "ROOMREC_HTTP_URL": f"http://127.0.0.1:{http_port}",
        "ROOMREC_RTMP_URL": f"rtmp://127.0.0.1:{rtmp_port}/live",
        **{k: str(v) for k, v in ports.items()},
        "ROOMREC_STATE_DIR": str(state),
        "RUST_LOG": os.environ.get("RUST_LOG") or "info",
    })
    if buckets:
        env["ROOMREC_RECORDINGS_BUCKET"] = resolver.ref(
            "RecordingsBucket" if "RecordingsBucket" in buckets else buckets[0])
    child_env = child_environment(env)

    # d. nginx-rtmp
    conf = state / "nginx.conf"
    conf.write_text(nginx_config(state, rtmp_port, http_port, hook_token))
    nginx_argv = [nginx, "-p", f"{state}/", "-e", str(state / "nginx-error.log"), "-c", str(conf)]
    check = subprocess.run([*nginx_argv, "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise StackError(f"nginx -t rejected {conf}:\n{check.stderr.strip()}")
    rtmp = sup.start("nginx", nginx_argv, state / "nginx.log", child_env,
                     own_log=state / "nginx-error.log")
    wait_until("nginx-rtmp", rtmp, lambda: tcp_accepts(rtmp_port))

    # e. gateway
    gw = sup.start("gateway", [gateway, "--template", str(TEMPLATE), "--listen",
                               f"127.0.0.1:{http_port}"], state / "gateway.log", child_env)
    wait_until("gateway", gw, lambda: http_answers(f"http://127.0.0.1:{http_port}/v2/apps"))

    # f. dev credential
    if mode == "up":
        saved = UP_STATE_DIR / "credentials.json"
        extra = []
        if saved.exists():
            try:
                old = json.loads(saved.read_text())
                extra = ["--key-id", old["key_id"], "--secret", old["secret"]]
            except (ValueError, KeyError, TypeError):
                log(f"{saved} is unreadable; creating a new credential")
        credential = run_admin(child_env, extra)
        if not extra:
            saved.write_text(json.dumps(credential) + "\n")
            saved.chmod(0o600)
    else:
        credential = run_admin(child_env, [])
        env["ROOMREC_DEV_KEY_ID"] = credential["key_id"]
        env["ROOMREC_DEV_SECRET"] = credential["secret"]

    # g. the recording worker and the callback deliverer, when asked for. `make test` runs
    # its API tests without them, so those see jobs that no worker has claimed.
    if "worker" in services:
        worker = binary("ROOMREC_WORKER_BIN", "target/debug/roomrec-worker")
        # libavformat would connect around the worker's stream guard for the hosts a lowercase
        # no_proxy names, so the worker refuses http(s) pulls while it is set; NO_PROXY stays.
        worker_env = {k: v for k, v in child_env.items() if k != "no_proxy"}
        sup.start("worker", [worker], state / "worker.log",
                  {**worker_env, **roles["worker"], "ROOMREC_SPOOL_DIR": str(state / "spool")})
    if "deliverer" in services:
        deliverer = binary("ROOMREC_DELIVERER_BIN", "target/debug/roomrec-deliverer")
        sup.start("deliverer", [deliverer], state / "deliverer.log",
                  {**child_env, **roles["callback-delivery"]})
    if "sweeper" in services:
        sup.start("sweeper", [admin_binary(), "sweep", "--every", str(SWEEP_EVERY_SECS[mode])],
                  state / "sweeper.log", {**child_env, **roles["sweeper"]})

    write_env_file(state / "env", env)
    return env


# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------

def raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def ports_from_env() -> dict[str, int]:
    ports = {}
    for name, default in DEFAULT_PORTS.items():
        raw = os.environ.get(name) or str(default)
        try:
            ports[name] = int(raw)
        except ValueError:
            raise StackError(f"{name}={raw!r} is not a port number") from None
        check_port_free(name, ports[name])
    return ports


def pid_file() -> Path:
    return UP_STATE_DIR / "stack.pid"


def running_stack_pid() -> int | None:
    try:
        pid = int(pid_file().read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"stack.py" in cmdline else None


def cmd_up() -> int:
    UP_STATE_DIR.mkdir(exist_ok=True)
    other = running_stack_pid()
    if other is not None:
        raise StackError(f"a stack is already up (pid {other}); `make down` stops it")
    ports = ports_from_env()
    pid_file().write_text(f"{os.getpid()}\n")
    sup = Supervisor()
    try:
        start_stack(sup, UP_STATE_DIR, ports, "up", SERVICES)
        state = os.path.relpath(UP_STATE_DIR, Path.cwd())
        print(f"""
roomrec local stack is up
  HTTP API     http://127.0.0.1:{ports['ROOMREC_HTTP_PORT']}
  RTMP ingest  rtmp://127.0.0.1:{ports['ROOMREC_RTMP_PORT']}/live/<stream>  (a URL from POST .../publish-url)
  AWS (moto)   http://127.0.0.1:{ports['ROOMREC_AWS_PORT']}
  credential   {state}/credentials.json  (account "{DEV_ACCOUNT}")
  environment  . {state}/env
  logs         {state}/*.log
Ctrl-C or `make down` stops it.""", flush=True)
        while True:
            dead = sup.first_dead()
            if dead is not None:
                raise StackError(f"{dead.name} died: {dead.describe_death()}")
            time.sleep(0.5)
    except Interrupted as e:
        log(f"{e}: stopping")
        return 0
    finally:
        sup.stop()
        if running_stack_pid() == os.getpid():
            pid_file().unlink(missing_ok=True)
        log("stopped")


def cmd_run(command: list[str], services: tuple[str, ...]) -> int:
    if not command:
        raise StackError("usage: stack.py run [--with worker,deliverer] -- CMD [ARGS...]")
    state = Path(tempfile.mkdtemp(prefix="roomrec-stack-"))
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS))))
    sup = Supervisor()
    status = None  # the command's, once it ran
    try:
        env = start_stack(sup, state, ports, "run", services)
        log(f"stack up (state {state}); running: {' '.join(command)}")
        try:
            proc = subprocess.Popen(command, env=child_environment(env))
        except OSError as e:
            raise StackError(f"cannot run {command[0]}: {e}") from e
        # The command shares our terminal's process group, so Ctrl-C reaches it directly;
        # SIGTERM is passed on. Either way we wait for it, then tear the stack down.
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda s, _f: proc.send_signal(s))
        returncode = proc.wait()
        signal.signal(signal.SIGINT, raise_interrupted)
        signal.signal(signal.SIGTERM, raise_interrupted)
        status = returncode if returncode >= 0 else 128 - returncode
        dead = sup.first_dead()
        denied = denials(state)
        if denied:
            # A role lacking a permission fails the run even where the code retried or
            # worked around it: on AWS the call would fail the same way.
            log(f"moto refused {len(denied)} calls for lack of permission (a role in "
                f"template.yaml needs it); the first ones:\n" + "\n".join(denied[:20]))
            status = status or 1
        if dead is not None:
            log(f"while {command[0]} ran, {dead.describe_death()}")
            status = status or 1
        elif status != 0:
            for name in ("gateway", *services):
                log(f"{command[0]} exited with status {status}; last lines of "
                    f"{state / f'{name}.log'}:\n{tail(state / f'{name}.log')}")
        return status
    except Interrupted as e:
        log(f"{e}: stopping")
        return 130
    finally:
        started = bool(sup.children)
        sup.stop()
        if status == 0 or not started:
            shutil.rmtree(state, ignore_errors=True)
        else:
            log(f"logs kept in {state}")


def denials(state: Path) -> list[str]:
    """The calls moto refused for lack of permission (infra/local/moto_iam.py logs them)."""
    try:
        lines = (state / "moto.log").read_text(errors="replace").splitlines()
    except OSError:
        return []
    # moto's access log may share a line with one (both write to stderr).
    return [line[line.index("denied: "):] for line in lines if "denied: " in line]


def cmd_down() -> int:
    pid = running_stack_pid()
    if pid is None:
        pid_file().unlink(missing_ok=True)
        log("no stack is up")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECS * 3
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            log(f"stopped stack (pid {pid})")
            return 0
        time.sleep(0.2)
    raise StackError(f"stack (pid {pid}) did not stop in {STOP_GRACE_SECS * 3:.0f}s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack on fixed ports and stay in the foreground")
    run = sub.add_parser("run", help="start the stack on free ports, run CMD, tear down")
    run.add_argument("--with", dest="services", default="",
                     help=f"comma-separated services to run too: {', '.join(SERVICES)}")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    sub.add_parser("down", help="stop the stack started by `up`")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, raise_interrupted)
    signal.signal(signal.SIGTERM, raise_interrupted)
    exempt_loopback_from_proxies()
    try:
        if args.command == "up":
            return cmd_up()
        if args.command == "run":
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            services = tuple(s for s in args.services.split(",") if s)
            unknown = [s for s in services if s not in SERVICES]
            if unknown:
                raise StackError(f"--with {','.join(unknown)}: the services are {', '.join(SERVICES)}")
            return cmd_run(command, services)
        return cmd_down()
    except StackError as e:
        log(f"error: {e}")
        return 1
    except Interrupted:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
