"""Run one Pulumi Python program under the engine, for our language host.

Pulumi's Go language host drives a helper script shipped with the CLI
bundle; that bundle cannot be downloaded here, so this module plays its
part. It is started by file path with the program's own interpreter, so it
imports nothing but the standard library and the `pulumi` SDK.

Config arrives the way the SDK already reads it: PULUMI_CONFIG (a JSON
object) and PULUMI_CONFIG_SECRET_KEYS (a JSON list) in the environment.
Exit code 32 means "the error has been reported to the engine already".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import runpy
import signal
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

BAIL_EXIT_CODE = 32


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="program_runner")
    parser.add_argument("--monitor", required=True, help="resource monitor address")
    parser.add_argument("--engine", default="", help="engine address (diagnostics)")
    parser.add_argument("--project", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--organization", default="organization")
    parser.add_argument("--root-directory", default=None)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("program", help="program file or directory with __main__.py")
    return parser.parse_args(argv)


def program_traceback(exn: BaseException) -> str:
    """The traceback from the program's first frame on: the frames of this
    runner, runpy and the SDK's stack wrapper above it are noise to a user."""
    frames = traceback.extract_tb(exn.__traceback__)
    in_runpy = [i for i, f in enumerate(frames) if f.filename in ("<frozen runpy>", runpy.__file__)]
    start = in_runpy[-1] + 1 if in_runpy else 0
    summary = traceback.TracebackException.from_exception(exn)
    summary.stack = traceback.StackSummary.from_list(frames[start:])
    return "".join(summary.format())


def run(args: argparse.Namespace) -> int:
    """Configure the SDK runtime, run the program in a stack, map failures to exit codes."""
    import grpc
    import pulumi
    import pulumi.runtime
    from pulumi.errors import RunError

    pulumi.runtime.reset_options(
        project=args.project,
        stack=args.stack,
        root_directory=args.root_directory,
        parallel=args.parallel,
        engine_address=args.engine,
        monitor_address=args.monitor,
        preview=args.dry_run,
        organization=args.organization,
    )
    pulumi.runtime.set_all_config(
        pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env()
    )

    # Failed tasks nobody awaited are reported through the engine instead.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=max(args.parallel, 1) * 4))

    def program() -> None:
        runpy.run_path(args.program, run_name="__main__")

    try:
        loop.run_until_complete(pulumi.runtime.run_in_stack(program))
        return 0
    except RunError as exn:
        # A user-facing error (bad config, validation): the message is the story.
        pulumi.log.error(str(exn))
        return BAIL_EXIT_CODE
    except grpc.RpcError as exn:
        # UNAVAILABLE: the engine is already shutting down and reports why.
        if exn.code() != grpc.StatusCode.UNAVAILABLE:
            pulumi.log.error(f"RPC error: {exn.details()}")
        return BAIL_EXIT_CODE
    except Exception as exn:
        pulumi.log.error("Program failed with an unhandled exception:\n" + program_traceback(exn))
        return BAIL_EXIT_CODE
    finally:
        # Cancel leftovers so closing the loop does not print "Task was destroyed".
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        sys.stdout.flush()
        sys.stderr.flush()


def _engine_closed(_signum: int, _frame: object) -> None:
    """The engine stops a language host by SIGINT to its process group, which
    includes this program: it has given up on the run and reports why itself."""
    sys.stdout.flush()
    os._exit(BAIL_EXIT_CODE)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, _engine_closed)
    return run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
