"""`llmplane`: validate an environment, plan it offline, diff it against a git ref, plan its capacity.

Exit codes: 0 fine, 2 invalid environment or input (every problem printed), 3 the plan violates a mandatory
policy, 4 an output file cannot be written where asked, 1 anything else.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
from pathlib import Path

import yaml
from llmplane.spec import SpecError, load_spec
from llmplane.spec.engine_rules import metric_warnings

from .environments import (
    ENVIRONMENTS,
    PLAINTEXT_ALLOWED,
    EnvironmentFileError,
    StackConfig,
    environment_file,
    plaintext_secret_problems,
    read_stack_config,
)

EXIT_INVALID = 2
EXIT_POLICY = 3
EXIT_OUTPUT = 4
"""An output file (--out, --plot) cannot be written where asked."""


def output_problem(path: Path, suffixes: tuple[str, ...]) -> str | None:
    """Why `path` cannot be written (checked before any work), or None. Folders are never created: a typo must not
    leave directories behind, inside the working tree or outside it."""
    if path.suffix.lower() not in suffixes:
        return f"{path}: unsupported file type {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}"
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"{path}: the folder {folder} does not exist; create it first or write elsewhere"
    if path.is_dir():
        return f"{path} is a directory; give a file name"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{path}: not writable; choose a path you can write to"
    return None


def _refuse_output(problem: str) -> int:
    print(f"llmplane: {problem}", file=sys.stderr)
    return EXIT_OUTPUT


def _stack_config(args: argparse.Namespace) -> StackConfig:
    """The environment's file, read; plain-text secrets stop every command but in `local`, where they warn."""
    config = read_stack_config(args.environment, environment_file(args.environment, args.environments))
    problems = plaintext_secret_problems(config)
    if problems and config.environment not in PLAINTEXT_ALLOWED:
        raise EnvironmentFileError("\n".join(problems))
    for problem in problems:
        print(f"llmplane: warning: {problem}", file=sys.stderr)
    return config


def _validate(args: argparse.Namespace) -> int:
    config = _stack_config(args)
    spec = load_spec(config.values, config.environment)
    for warning in metric_warnings(spec):
        print(f"llmplane: warning: {warning.path}: {warning.message}\n      fix:   {warning.fix}", file=sys.stderr)
    models = ", ".join(spec.models)
    print(f"environment '{spec.environment}' is valid: {len(spec.clusters)} cluster(s), models: {models}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from llmplane.stacks.plan_policies import evaluate, mandatory, verdict

    from .plan import run_plan
    from .report import as_json, inventory

    plan = run_plan(_stack_config(args))
    violations = evaluate(plan)
    if args.json:
        print(as_json(plan, violations))
    else:
        print(inventory(plan))
        print(verdict(plan, violations))
    blocking = mandatory(violations)
    if not blocking:
        return 0
    if args.json:
        print(f"llmplane: {len(blocking)} mandatory policy violation(s) in '{plan.environment}':", file=sys.stderr)
        for violation in blocking:
            print(f"  [{violation['policy']}] {violation['message']}", file=sys.stderr)
    return EXIT_POLICY


def _policy_config(args: argparse.Namespace) -> int:
    from llmplane.policies.config import pack_config

    if args.out is not None and (problem := output_problem(args.out, (".json",))):
        return _refuse_output(problem)
    config = _stack_config(args)
    spec = load_spec(config.values, config.environment)
    text = json.dumps(pack_config(spec), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"policy pack config for '{spec.environment}' written to {args.out}", file=sys.stderr)
    return 0


def _capacity(args: argparse.Namespace) -> int:
    from llmplane.capacity.planner import PlanError, format_table, plan
    from llmplane.capacity.trace import TraceError, credit, read_trace

    if args.plot is not None and (problem := output_problem(args.plot, (".png",))):
        return _refuse_output(problem)
    config = _stack_config(args)
    spec = load_spec(config.values, config.environment)
    if args.recommend:
        return _recommend(args, config, spec)
    try:
        trace = read_trace(args.trace)
        result = plan(spec, trace, args.model, args.version, args.cluster)
    except (TraceError, PlanError) as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return EXIT_INVALID
    trace_credit = credit(args.trace.name, args.trace_credit)
    print(format_table(result, trace_credit))
    if args.plot is not None:
        from llmplane.capacity.plot import write_plot

        try:
            print(f"plot written to {write_plot(result, args.plot, trace_credit)}", file=sys.stderr)
        except (RuntimeError, OSError) as error:
            return _refuse_output(str(error))
    return 0


def _recommend(args: argparse.Namespace, config: StackConfig, spec) -> int:
    """`capacity --recommend`: the cost-versus-SLO table, then the diff of the environment file that applies the
    cheapest configuration meeting the SLO."""
    from llmplane.capacity.planner import PlanError
    from llmplane.capacity.recommend import applicable, format_recommendation, recommend
    from llmplane.capacity.trace import TraceError, credit, read_trace

    from .config_edit import set_value, unified_diff

    try:
        rec = recommend(spec, read_trace(args.trace), args.model, args.cluster)
    except (TraceError, PlanError) as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return EXIT_INVALID
    chosen, change, passed = applicable(spec, config.values, rec)
    print(format_recommendation(rec, chosen, [*passed, *(change.notes if change else [])]))
    if change is not None:
        path = environment_file(config.environment, args.environments)
        before = path.read_text()
        after = before
        for where, value in change.edits:
            after = set_value(after, where, value)
        print()
        print(unified_diff(before, after, f"{path.parent.name}/{path.name}"), end="")
    print()
    print(credit(args.trace.name, args.trace_credit))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .review import DiffError, markdown, review

    try:
        print(markdown(review(args.environment, args.base)))
    except DiffError as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return 1
    return 0


def _experiment_report(args: argparse.Namespace) -> int:
    from llmplane.experiments.prometheus import PrometheusError

    from .experiment_report import ReportError, experiment_report

    try:
        result = experiment_report(args.environment, args.model, args.prometheus, args.experiment, args.window,
                                   args.environments)
    except ReportError as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return EXIT_INVALID
    except PrometheusError as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return 1
    print(result.markdown, end="")
    if args.apply and result.edited is not None:
        from .environments import environment_file

        environment_file(args.environment, args.environments).write_text(result.edited)
    if args.summary:
        Path(args.summary).write_text(json.dumps({
            "environment": args.environment, "model": args.model, "experiment": result.evaluation.experiment.name,
            "verdict": result.evaluation.verdict, "changed": result.edited is not None,
            "report_sha256": result.report_sha256}) + "\n")
    return 0


def _experiment_list(args: argparse.Namespace) -> int:
    from .experiment_report import in_flight

    for model, name in in_flight(args.environment, args.environments):
        print(model, name)
    return 0


def _cluster(args: argparse.Namespace) -> int:
    from llmplane.stacks.local import cluster_addons
    from llmplane.stacks.local.embedded_cluster import ClusterError, EmbeddedCluster

    from .local.for_environment import addons, fake_nodes

    cluster = EmbeddedCluster(args.state_dir)
    try:
        if args.action == "up":
            config = _stack_config(args)
            spec = load_spec(config.values, config.environment)
            cluster.up(fake_nodes(spec))
            wanted = addons(spec)
            if wanted:
                cluster_addons.start(cluster, wanted)
        elif args.action == "down":
            cluster.down()
        else:
            print(cluster.status())
    except ClusterError as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return 1
    return 0


def _environments_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--environments", metavar="DIR", type=Path, default=ENVIRONMENTS,
                         help="folder holding the Pulumi.<env>.yaml files (default: the project's environments/)")


def parser() -> argparse.ArgumentParser:
    """The command line: `llmplane validate <env>`, `llmplane plan <env> [--json]`,
    `llmplane diff <env> --base REF`, `llmplane policy-config <env> [--out FILE]`,
    `llmplane capacity <env> --trace FILE [--plot PNG] [--recommend]`,
    `llmplane experiment report <env> <model> [--prometheus URL] [--experiment NAME] [--window DURATION]`."""
    root = argparse.ArgumentParser(prog="llmplane", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check an environment file; exit 2 with every problem")
    validate.add_argument("environment")
    _environments_option(validate)
    validate.set_defaults(run=_validate)
    plan = commands.add_parser("plan", help="run the stack under Pulumi mocks, list what it would create and judge it "
                                  "with the policy pack (exit 3 on a mandatory violation)")
    plan.add_argument("environment")
    plan.add_argument("--json", action="store_true", help="one JSON object: environment, resources, policies")
    _environments_option(plan)
    plan.set_defaults(run=_plan)
    policy = commands.add_parser(
        "policy-config",
        help="the --policy-pack-config JSON for the engine: every policy's enforcement in this environment",
    )
    policy.add_argument("environment")
    policy.add_argument("--out", metavar="FILE", type=Path, help="write to FILE instead of stdout")
    _environments_option(policy)
    policy.set_defaults(run=_policy_config)
    diff = commands.add_parser("diff", help="Markdown of what the working tree changes in an environment against a "
                                             "git ref: resources, property before/after, policy verdicts")
    diff.add_argument("environment")
    diff.add_argument("--base", metavar="REF", required=True, help="git ref to compare with, e.g. origin/main")
    diff.set_defaults(run=_diff)
    capacity = commands.add_parser(
        "capacity",
        help="replay a request trace against a model version's autoscaling policy: GPU-hours, cost and TTFT next "
             "to static peak provisioning and a clairvoyant oracle",
    )
    capacity.add_argument("environment")
    capacity.add_argument("--trace", metavar="FILE", type=Path, required=True,
                          help="CSV with TIMESTAMP, ContextTokens, GeneratedTokens (the Azure LLM inference format)")
    capacity.add_argument("--model", metavar="NAME", help="model to plan (default: the environment's first)")
    capacity.add_argument("--version", metavar="V", help="deployed version (default: the stable one)")
    capacity.add_argument("--cluster", metavar="NAME", help="cluster whose pool prices the GPU-hours (default: the "
                                                            "model's first)")
    capacity.add_argument("--plot", metavar="PNG", type=Path, help="also write demand, replicas and TTFT over time")
    capacity.add_argument("--recommend", action="store_true",
                          help="search GPU types offered in the cluster's region, tensor parallelism, fp8 KV, ngram "
                               "speculative decoding, queue thresholds and replica bounds; print the cheapest that "
                               "meet the TTFT SLO and the environment diff that applies the cheapest")
    capacity.add_argument("--trace-credit", metavar="TEXT",
                          help="the trace's source and licence, printed with the results (azure-2023: the Azure LLM "
                               "inference trace 2023's attribution, e.g. for an excerpt; default: that attribution "
                               "for the Azure trace files, else the file's name)")
    _environments_option(capacity)
    capacity.set_defaults(run=_capacity)
    experiment = commands.add_parser("experiment", help="experiments between a model's deployed versions")
    actions = experiment.add_subparsers(dest="action", required=True)
    report = actions.add_parser(
        "report",
        help="read Prometheus and print, as Markdown for a pull request: per arm the estimates with always-valid "
             "intervals, the mSPRT on the primary metric, the guardrails, the traffic still needed, a verdict "
             "(promote, hold, roll back) and the environment diff of the next step or the rollback",
    )
    report.add_argument("environment")
    report.add_argument("model")
    report.add_argument("--prometheus", metavar="URL",
                        help="Prometheus to read (default: the environment's observability.prometheusUrl)")
    report.add_argument("--experiment", metavar="NAME", help="which experiment (default: the model's only one)")
    report.add_argument("--window", metavar="DURATION",
                        help="how far back to read, e.g. 6h or 14d (default: the experiment's maxDays)")
    report.add_argument("--apply", action="store_true",
                        help="write the step (or the rollback) and the verdict into the environment file")
    report.add_argument("--summary", metavar="FILE",
                        help="also write the verdict as JSON (what the scheduled workflow acts on)")
    _environments_option(report)
    report.set_defaults(run=_experiment_report)
    listing = actions.add_parser("list", help="the experiments an environment runs: `<model> <experiment>` lines")
    listing.add_argument("environment")
    _environments_option(listing)
    listing.set_defaults(run=_experiment_list)
    cluster = commands.add_parser(
        "cluster",
        help="the embedded Kubernetes cluster the local environment deploys to: up (start it, fake GPU nodes from "
             "the environment's pools), down (stop every process it started), status",
    )
    cluster.add_argument("action", choices=("up", "down", "status"))
    cluster.add_argument("--environment", default="local", help="environment whose GPU pools become fake nodes")
    cluster.add_argument("--state-dir", metavar="DIR", type=Path, default=Path(".state/cluster"),
                         help="where the cluster keeps its data, certificates, logs and kubeconfig")
    _environments_option(cluster)
    cluster.set_defaults(run=_cluster)
    return root


SHORT_LIVED_HEAP = ("plan", "diff")
"""Commands whose heap is nearly all alive until they end (the SDKs' classes, the plan): Python's cyclic garbage
collector stays off while they run (its full collections walk that heap again and again: seconds for `plan prod`,
while its peak memory grows by ~5 MiB without them), and the heap is frozen at exit so that the interpreter's
shutdown does not walk it once more. As the process's own entry point (`argv` None: the console script,
`python -m llmplane.stacks.cli`) the collector stays off to the end, since turning it back on would walk every object
allocated since
(~0.3 s for `plan prod`); in-process callers (`main([...])`) get it back as it was."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llmplane` console script."""
    args = parser().parse_args(argv)
    collect = gc.isenabled()
    if args.command in SHORT_LIVED_HEAP:
        gc.disable()
        atexit.unregister(gc.freeze)
        atexit.register(gc.freeze)
    try:
        return args.run(args)
    except SpecError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_INVALID
    except (FileNotFoundError, EnvironmentFileError) as error:
        print(f"llmplane: {error}", file=sys.stderr)
        return EXIT_INVALID
    except yaml.YAMLError as error:
        print(f"llmplane: environment '{args.environment}' is not valid YAML: {error}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:
        return 0
    finally:
        if collect and argv is not None:
            gc.enable()


if __name__ == "__main__":
    sys.exit(main())
