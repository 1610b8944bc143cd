"""`pulumi up` as `make up` runs it: one at a time, after an interrupted run, never writing before checking.

- One update per stack at a time: a second `make up` waits for no one and
  fails at once, naming the running one's pid, and does not advise `pulumi
  cancel` (which would break the running update).
- An update killed outright (SIGKILL, a closed terminal) leaves plugin
  processes and pending operations behind: the processes of its process group
  are stopped, and pending operations are cleared by a refresh that asks the
  target what really exists; both are said.
- The update refreshes first, so what was changed or removed out of band
  (a `kubectl edit`, a deleted object) is put back (server-side apply with
  force: the stack owns the fields it declares), and previews with the
  policy pack before it writes: a mandatory violation stops it with nothing
  written.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / ".state" / "locks"
EXIT_BUSY = 75


def say(message: str) -> None:
    print(f"make up: {message}", flush=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_orphans(record: Path) -> None:
    """Stop what an interrupted run left running (its pulumi and plugins, one process group)."""
    if not record.exists():
        return
    try:
        pgid = int(record.read_text().strip())
    except ValueError:
        pgid = 0
    if pgid > 1 and _group_alive(pgid):
        say(f"an earlier update was interrupted and left processes running (process group {pgid}); stopping them")
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    record.unlink(missing_ok=True)


def pending_operations(stack: str) -> list[dict]:
    exported = subprocess.run(["pulumi", "stack", "export", "--stack", stack], capture_output=True, text=True,
                              check=False)
    if exported.returncode != 0 or not exported.stdout.strip():
        return []
    return json.loads(exported.stdout).get("deployment", {}).get("pending_operations") or []


def clear_pending(stack: str, pending: list[dict], config_args: list[str]) -> None:
    kinds = sorted({p.get("type", "?") for p in pending})
    say(f"the last update was interrupted with {len(pending)} operation(s) in flight ({', '.join(kinds)}); "
        "refreshing from the target to learn what really exists, then clearing them")
    done = subprocess.run(["pulumi", "refresh", "--stack", stack, "--yes", "--skip-preview",
                           "--clear-pending-creates", *config_args], check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)


def _config_args(extra: list[str]) -> list[str]:
    """The --config-file option among the update's arguments, which refresh needs too."""
    for index, arg in enumerate(extra):
        if arg == "--config-file" and index + 1 < len(extra):
            return extra[index:index + 2]
    return []


def lock_key(stack: str, backend: str) -> str:
    """One lock per stack and backend (the render stack has a backend of its own)."""
    return f"{stack}-{hashlib.sha256(backend.encode()).hexdigest()[:8]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmplane.stacks.local.safe_up",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: options for `pulumi up`")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    LOCKS.mkdir(parents=True, exist_ok=True)
    key = lock_key(args.stack, os.environ.get("PULUMI_BACKEND_URL", ""))
    lock = (LOCKS / f"{key}.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        print(f"make up: another update of stack '{args.stack}' is running (pid {holder}); wait for it to finish, "
              "then run `make up` again", file=sys.stderr)
        return EXIT_BUSY
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    record = LOCKS / f"{key}.pgid"
    stop_orphans(record)
    pending = pending_operations(args.stack)
    if pending:
        clear_pending(args.stack, pending, _config_args(extra))
    # The stack owns what it declares: a field someone changed with kubectl is taken back, not a conflict.
    env = {"PULUMI_K8S_ENABLE_PATCH_FORCE": "true", **os.environ}
    proc = subprocess.Popen(["pulumi", "up", "--stack", args.stack, "--yes", "--refresh", *extra],
                            start_new_session=True, env=env)
    record.write_text(str(proc.pid))

    def forward(signum: int, _frame) -> None:
        # Ctrl-C reaches pulumi, which stops starting new operations and finishes the ones in flight.
        os.killpg(proc.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = proc.wait()
    if not _group_alive(proc.pid):
        record.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
