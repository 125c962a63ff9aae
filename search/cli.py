"""The `agentune` command line: thin wrappers around plain functions that tests call directly.

Subcommands:
    run         run a campaign goal (`agentune run mitbih:aami3_quick`).
    submit      run a campaign goal as a Ray job on a cluster (`agentune submit GOAL`).
    list        list the campaign goals.
    train       one training run of the biosignals workload (Hydra overrides follow).
    dashboard   regenerate a campaign's HTML dashboard, or draw a demo one.
    check-model run the safety layer's checks on a model file (`agentune check-model net.py`).

Exit codes: 0 success, 1 a run that failed (check-model: the model was rejected, every
reason on stderr), 2 bad input (a one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from rich.progress import Progress

    from feedback import RunRecord

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _train(hydra_args: Sequence[str]) -> int:
    """Check the overrides, then hand them to the Hydra entry point (which owns `--help`).

    A config that does not compose (an unknown key, a missing group option) is a usage error:
    Hydra's first message line on stderr and exit 2, before anything trains.
    """
    from biosignals.train import main_from_argv

    if not any(arg.startswith("-") for arg in hydra_args):  # flags (--help, -m) are Hydra's
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from biosignals.train import compose_config

        try:
            cfg = compose_config(hydra_args)
        except (HydraException, OmegaConfBaseException) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(first_line) from e
        from search.local_train import generated_model_name

        if generated_model_name(cfg) is not None:
            return _train_generated(cfg)
    return main_from_argv(hydra_args)


def _train_generated(cfg: DictConfig) -> int:
    """A generated model: checked and trained under the safety layer's guard."""
    from agent.safety import SafetyError
    from biosignals.train import format_summary
    from search.local_train import train_generated

    try:
        summary = train_generated(cfg)
    except SafetyError as e:
        raise UsageError(str(e)) from e
    print(format_summary(summary))
    return EXIT_OK if summary.status in ("completed", "stopped") else EXIT_FAILED


def _dashboard(args: argparse.Namespace) -> int:
    import feedback

    if args.demo is not None:
        out = feedback.write_demo_dashboard(Path(args.demo))
    else:
        if args.campaign_dir is None:
            raise UsageError("dashboard needs CAMPAIGN_DIR, or --demo OUT.html for a demo")
        campaign_dir = Path(args.campaign_dir)
        if not campaign_dir.is_dir():
            raise UsageError(
                f"campaign directory {campaign_dir} does not exist; pass the folder a campaign "
                "wrote (it holds history/), or use --demo OUT.html"
            )
        try:
            out = feedback.write_dashboard(campaign_dir, Path(args.out) if args.out else None)
        except feedback.FeedbackError as e:
            raise UsageError(str(e)) from e
    print(f"dashboard: {out}")
    return EXIT_OK


class UsageError(ValueError):
    """Bad command-line input; reported as one line with exit code 2."""


def _format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_run_line(record: RunRecord, recommendation: str, best: RunRecord | None) -> str:
    """One line per finished trial: trial, arm, tier, origin, status, value, best, advice."""
    return (
        f"trial {record.trial_id or record.run_id:<16} arm {record.arm:<22} tier {record.tier} "
        f"{record.origin:<9} {record.status:<10} {record.metric}={_format_value(record.value)} "
        f"best={_format_value(best.value if best else None)} next={recommendation}"
    )


@contextlib.contextmanager
def _paused(progress: Progress) -> Iterator[None]:
    """Stop the live progress display while the body runs (a prompt), then restart it."""
    live = progress.live.is_started
    if live:
        progress.stop()
    try:
        yield
    finally:
        if live:
            progress.start()


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from search.goals import CampaignError, load_goal
    from search.runner import CampaignOptions, run_campaign

    if args.budget is not None and args.budget < 1:
        raise UsageError(f"--budget must be a positive number of trials, got {args.budget}")
    try:
        goal = load_goal(args.goal)
    except CampaignError as e:
        raise UsageError(str(e)) from e
    approval_hook = None
    if args.approval == "terminal":
        from agent.hooks import ApprovalError, TerminalApprovalHook

        try:  # the prompt pauses the progress display (defined below) while it asks
            approval_hook = TerminalApprovalHook(pause=lambda: _paused(progress))
        except ApprovalError as e:
            raise UsageError(str(e)) from e
    options = CampaignOptions(
        budget=args.budget,
        approval=args.approval,
        approval_hook=approval_hook,
        model=args.model,
        api_base=args.api_base,
        resume=args.resume,
        storage=Path(args.storage) if args.storage else None,
        stamp=args.stamp,
    )
    console = Console(highlight=False, soft_wrap=True)
    budget = args.budget or goal.budget
    console.print(f"campaign {goal.spec}: {goal.description}")
    console.print(
        f"experiment={goal.experiment} metric={goal.metric} ({goal.mode}) budget={budget} "
        f"trials, {goal.max_concurrent} at a time, max_tier={goal.max_tier}"
    )
    progress = Progress(
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )
    task = progress.add_task("trials", total=budget)

    def on_run(record: RunRecord, recommendation: str, best: RunRecord | None) -> None:
        progress.console.print(format_run_line(record, recommendation, best), soft_wrap=True)
        if record.status != "rejected":  # a rejected trial never ran: it spends no budget
            progress.advance(task)

    try:
        with progress:
            result = run_campaign(goal, options, on_run=on_run)
    except CampaignError as e:
        raise UsageError(str(e)) from e
    console.print(
        f"\ndone in {result.duration_s:.0f}s: {result.n_runs} runs "
        + ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    )
    console.print(f"stopped: {result.stop_reason}")
    if result.best is not None:
        best = result.best
        console.print(
            f"best: {best.metric}={best.value:.4f} (arm {best.arm}, tier {best.tier}, "
            f"model {best.model}, {best.num_params:,} params)"
        )
        config = result.best_config
        if config is not None and config.n > 1:
            console.print(f"best config's {best.metric}: {config.describe()} over its seeds")
        params = (f"{k}={v}" for k, v in sorted(best.params.items()))
        console.print("best config: " + " ".join([*best.overrides, *params]))
    else:
        console.print("best: none (no trial completed)")
    if result.summary:
        console.print(f"summary: {result.summary}")
    console.print(f"history:   {result.history_dir}")
    console.print(f"dashboard: {result.dashboard}")
    return EXIT_OK if result.best is not None else EXIT_FAILED


def _check_model(args: argparse.Namespace) -> int:
    """Static check, then the sandboxed smoke test; never imports the file in this process."""
    from agent.safety.model_check import check_model_file

    if args.class_name is not None and not args.class_name.isidentifier():
        raise UsageError(f"--class must be a Python class name, got {args.class_name!r}")
    dims = {
        "in_channels": args.in_channels,
        "input_length": args.input_length,
        "num_classes": args.num_classes,
    }
    for flag, value in dims.items():
        if value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive integer, got {value}")
    if args.num_features < 0:
        raise UsageError(f"--num-features must be an integer >= 0, got {args.num_features}")
    dims["num_features"] = args.num_features
    path = Path(args.file)
    try:
        verdict = check_model_file(path, class_name=args.class_name, dims=dims)
    except OSError as e:
        raise UsageError(
            f"cannot read {path}: {e.strerror or e}; pass the path of a Python file"
        ) from e
    shape = f"(2, {dims['in_channels']}, {dims['input_length']})"
    if verdict.uses_features:
        shape += f" + features (2, {dims['num_features']})"
    if verdict.accepted:
        print(
            f"accepted: {path}: class {verdict.class_name}, {verdict.num_params:,} parameters, "
            f"output {verdict.output_shape} for input {shape}"
        )
        return EXIT_OK
    stage = "static check" if verdict.stage == "static" else f"smoke test on input {shape}"
    count = len(verdict.reasons)
    print(f"rejected: {path} ({stage}, {count} reason{'s' * (count != 1)})", file=sys.stderr)
    for reason in verdict.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return EXIT_FAILED


def _list() -> int:
    """Every goal of the campaign files that load; one stderr line per file that does not."""
    from search.goals import scan_goals

    goals, errors = scan_goals()
    for spec, description in goals:
        print(f"{spec:<26} {description}")
    for error in errors:
        print(f"agentune list: {' '.join(str(error).split())}", file=sys.stderr)
    return EXIT_USAGE if errors else EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    """Submit the goal as a Ray job; print how to follow it (or follow it with --follow)."""
    from search.goals import CampaignError, load_goal
    from search.submit import auth_headers, follow_job, plan_submission, submit_job

    try:
        goal = load_goal(args.goal, compose=True)
        plan = plan_submission(
            goal,
            address=args.address,
            budget=args.budget,
            storage=Path(args.storage) if args.storage else None,
            model=args.model,
            api_base=args.api_base,
            env_names=args.env or (),
        )
        headers = auth_headers()
        submit_job(plan, headers=headers)
    except CampaignError as e:  # SubmitError is one
        raise UsageError(str(e)) from e
    for line in plan.instructions(token=bool(headers)):
        print(line, flush=True)
    if not args.follow:
        return EXIT_OK
    try:
        status = follow_job(plan, headers=headers)
    except CampaignError as e:
        raise UsageError(str(e)) from e
    print(f"job {plan.submission_id}: {status}")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED


def _add_submit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = sub.add_parser(
        "submit",
        help="run a campaign goal as a job on a Ray cluster (ray job submit with the project "
        "as working dir)",
        description="Exit 0: submitted (with --follow: the job succeeded); 1: the followed "
        "job failed; 2: bad input or the cluster refused (one line on stderr).",
    )
    submit.add_argument("goal", help="FILE:GOAL (see `agentune list`)")
    submit.add_argument(
        "--address",
        help="the cluster dashboard's URL (default $RAY_API_SERVER_ADDRESS, else "
        "http://127.0.0.1:8265: the head's dashboard, or an SSH tunnel to it)",
    )
    submit.add_argument("--budget", type=int, help="trials to run (default: the goal's budget)")
    submit.add_argument(
        "--storage",
        help="absolute folder for campaign directories on the node running the job (default "
        "./agentune_runs made absolute, right for a cluster on this machine)",
    )
    submit.add_argument("--model", help="the agent's model (as agentune run --model)")
    submit.add_argument("--api-base", help="an OpenAI-compatible server (as agentune run)")
    submit.add_argument(
        "--env",
        action="append",
        metavar="NAME",
        help="forward this shell's variable NAME to the job (e.g. ANTHROPIC_API_KEY); the "
        "goal's llm.api_key_env is forwarded without it. Values never enter the upload or "
        "the job metadata",
    )
    submit.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand except `train` (whose arguments Hydra owns)."""
    parser = argparse.ArgumentParser(
        prog="agentune", description="LLM-agent experiment search on Ray Tune."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "train",
        help="train once: agentune train experiment=mitbih_aami3 trainer.epochs=2",
        add_help=False,
    )
    run = sub.add_parser("run", help="run a campaign goal, e.g. agentune run mitbih:aami3_quick")
    run.add_argument("goal", help="FILE:GOAL from campaigns/ (see `agentune list`)")
    run.add_argument("--budget", type=int, help="trials to run (default: the goal's budget)")
    run.add_argument(
        "--approval",
        choices=("terminal", "auto"),
        default="auto",
        help="who approves every trial before it is launched, Optuna's and the agent's: "
        "auto (default) or terminal (asks here; needs an interactive terminal)",
    )
    run.add_argument(
        "--model",
        help="the agent's model: offline (default: no LLM, no network), a LiteLLM model id "
        "(gpt-4o-mini, anthropic/claude-sonnet-4-5), or with --api-base the model name an "
        "OpenAI-compatible server serves",
    )
    run.add_argument(
        "--api-base",
        help="base URL of an OpenAI-compatible server (vLLM, Ollama), e.g. "
        "http://127.0.0.1:8000/v1; the key comes from the goal's llm.api_key_env",
    )
    run.add_argument("--resume", action="store_true", help="continue this goal's newest campaign")
    run.add_argument("--storage", help="folder for campaign directories (default ./agentune_runs)")
    run.add_argument(
        "--stamp",
        help="name of the campaign's folder instead of the UTC start time (agentune submit "
        "sets it, so the job's metadata can name the paths before the job starts)",
    )
    _add_submit_parser(sub)
    sub.add_parser("list", help="list the campaign goals")
    check = sub.add_parser(
        "check-model",
        help="check model code with the safety layer (static check + sandboxed smoke test)",
        description="Exit 0: accepted; 1: rejected (every reason on stderr); 2: usage error.",
    )
    check.add_argument("file", help="the Python file (it is never imported by this process)")
    check.add_argument("--class", dest="class_name", help="the class to build (default: the "
                       "last class taking in_channels, input_length, num_classes)")  # fmt: skip
    from agent.safety.policy import DEFAULT_SMOKE_DIMS

    for key, default in DEFAULT_SMOKE_DIMS.items():
        flag = key.replace("_", "-")
        text = f"smoke-test {key} (default {default})"
        if key == "num_features":
            text = (
                f"side features per window (default {default}, the ECG RR-interval features; "
                "0 for none), given as forward(x, features) to a class declaring num_features"
            )
        check.add_argument(f"--{flag}", type=int, default=default, help=text)
    dash = sub.add_parser("dashboard", help="write a campaign's standalone HTML dashboard")
    dash.add_argument("campaign_dir", nargs="?", help="folder a campaign wrote (holds history/)")
    dash.add_argument("--out", help="where to write the HTML (default CAMPAIGN_DIR/dashboard.html)")
    dash.add_argument("--demo", metavar="OUT.html", help="draw a demo dashboard; no training")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (also used by the console script)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args_list or "--verbose" in args_list
    args_list = [a for a in args_list if a not in ("-v", "--verbose")]
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args_list and args_list[0] == "train":
        try:
            return _train(args_list[1:])
        except UsageError as exc:
            print(f"agentune train: {exc}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "dashboard":
            return _dashboard(args)
        if args.command == "run":
            return _run(args)
        if args.command == "submit":
            return _submit(args)
        if args.command == "list":
            return _list()
        if args.command == "check-model":
            return _check_model(args)
    except UsageError as exc:
        print(f"agentune {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
