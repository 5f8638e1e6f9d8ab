"""How a training script meets its user on the command line: help that shows every default, flags checked against
their ranges before anything runs, and a user error reported as one line instead of a stack of tracebacks."""

import argparse
import math
import os
import signal
import sys

# Set to 1 to see the full traceback of an error the scripts report in one line.
DEBUG_VARIABLE = "HFGEN_DEBUG"

# What a user can cause and fix: bad flags and values, missing or broken files and folders, a model that does not
# fit the data, a run that diverged. Everything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError)


class ScriptArgumentParser(argparse.ArgumentParser):
    """An argument parser whose `--help` shows the default of every flag, including flags added without a help
    text (argparse prints nothing at all for those)."""

    def __init__(self, description: str):
        super().__init__(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    def add_argument(self, *names, **options):
        if not options.get("help"):
            options["help"] = "(default: %(default)s)"
        return super().add_argument(*names, **options)


def make_parser(description: str) -> argparse.ArgumentParser:
    return ScriptArgumentParser(description)


def check_flag_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace, ranges: dict) -> None:
    """Reject a flag outside its range with `parser.error` (one line, exit code 2), naming the flag.

    `ranges` maps a flag's name to `(low, high, kind)`: `kind` is `"open"` (low < x < high), `"closed"` (low <= x <=
    high), `"low_open"` (low < x <= high) or `"high_open"` (low <= x < high); a bound of None is no bound. Flags
    that are None (unset optional flags) or missing from `args` are skipped.
    """
    for name, (low, high, kind) in ranges.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{name} must be a finite number, got {value}")
        low_ok = low is None or (value > low if kind in ("open", "low_open") else value >= low)
        high_ok = high is None or (value < high if kind in ("open", "high_open") else value <= high)
        if not (low_ok and high_ok):
            left = "(" if kind in ("open", "low_open") else "["
            right = ")" if kind in ("open", "high_open") else "]"
            bounds = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
            parser.error(f"--{name} must lie in {bounds}, got {value}")


def run_script(main, args: argparse.Namespace):
    """Run `main(args)`; a user error ends the script with one line on stderr, naming what to fix, and exit code 1.

    Nothing already saved is touched on the way out: checkpoints are written atomically and the Hub folder only at
    the end. Set `HFGEN_DEBUG=1` to get the traceback instead.
    """
    if os.environ.get(DEBUG_VARIABLE) == "1":
        return main(args)
    stop_on_interrupt(args.output_dir)
    try:
        return main(args)
    except USER_ERRORS as error:
        close_progress_bars()
        message = " ".join(str(error).split()) or type(error).__name__
        print(
            f"{script_name()}: error: {message} (set {DEBUG_VARIABLE}=1 for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)


def stop_on_interrupt(output_dir: str) -> None:
    """Make Ctrl-C (SIGINT) end the run at once with one line and exit code 130.

    A KeyboardInterrupt is not enough: raised while autograd or torch's serialisation calls back into Python, it was
    seen to be swallowed, and the run went on. Stopping at once is safe because checkpoints are written to a
    temporary folder and renamed only when complete; an unfinished one is ignored (and removed by the next save).
    """

    def stop(signum, frame):
        close_progress_bars()
        # Ctrl-C is a user's choice, not a failure to explain: checkpoints are complete or absent, never half-written.
        print(
            f"{script_name()}: interrupted; the complete checkpoints in {output_dir} are kept: "
            "--resume_from_checkpoint latest continues from the newest",
            file=sys.stderr,
            flush=True,
        )
        os._exit(130)

    signal.signal(signal.SIGINT, stop)


def close_progress_bars() -> None:
    """Close the run's open tqdm bars now: left open, each redraws itself at exit, after the message that matters."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def script_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "hfgen"
