"""``shiftkit fit|validate|test|predict``: LightningCLI over ShiftClassifier and the shiftkit DataModules.

Beyond LightningCLI's own arguments (``--config``, ``--print_config``, ``--seed_everything``,
``--trainer.*``, ``--model.*``, ``--data``, ``--ckpt_path``) the command has:

* ``--monitor.*``: the :class:`~shiftkit.ShiftMonitor` arguments (``--monitor.every_n_steps=20``,
  ``--monitor.layers='[Linear]'``...); ``--monitor.enabled=false`` leaves the monitor out.
  ``keep_histograms`` defaults to true here (the run directory keeps the histograms).
* ``--recipe``, ``--variant``: the run's names in ``result.json`` (default: the stem of the first
  ``--config`` file, and the model's ``norm``); ``--variant NAME`` on the command line also
  applies the recipe's named variant (see :mod:`shiftkit.cli.argv`).
* ``--run_dir``: the run directory (default ``runs/<recipe>/<config_hash>``), written per
  :mod:`shiftkit.records.run_dir` by global rank 0; a ``CSVLogger`` always writes its
  ``metrics.csv`` there.
* ``--test_after_fit`` (default true): ``fit`` ends with a ``test`` of the final weights
  (skipped, with a message, when the fit ran in forked/spawned workers, see
  :func:`~shiftkit.cli.run_recorder.forks_workers`).
* ``--wandb`` (default false), ``--wandb_project``, ``--wandb_mode=auto|online|offline``: a W&B
  logger too, offline unless logged in (:mod:`shiftkit.cli.wandb_setup`).
* ``--sweep``: the grid of a recipe (read by ``shiftkit sweep``, ignored by ``fit``).

``data.input_shape``, ``data.num_classes`` and ``data.batch_size`` are linked into the model when
the classes are instantiated, so a recipe names them once, in the DataModule.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from shiftkit.cli.argv import ArgvError, expand_argv
from shiftkit.cli.errors import explain_parse_error
from shiftkit.cli.recipe import RecipeError
from shiftkit.cli.run_config import default_run_dir, run_config_hash
from shiftkit.cli.run_recorder import RunRecorder, forks_workers
from shiftkit.cli.wandb_setup import make_wandb_logger, resolve_wandb_mode
from shiftkit.data.base import ArrayDataModule
from shiftkit.data.errors import DatasetFormatError, DatasetNotFoundError
from shiftkit.models.classifier import ShiftClassifier
from shiftkit.monitor import ShiftMonitor

__all__ = ["ConfigResolver", "ShiftkitCLI", "run_cli"]

RUN_ARGUMENTS = (
    ("recipe", str | None, None,
     "Recipe name recorded in result.json (default: stem of the first --config file)."),
    ("variant", str | None, None,
     "Variant name recorded in result.json (default: model.norm). On the command line it also "
     "applies the recipe's named variant (sweep.variants.NAME) where it appears."),
    ("run_dir", str | None, None, "Run directory (default: runs/<recipe>/<config_hash>)."),
    ("test_after_fit", bool, True,
     "After fit, test the final weights (not when fit ran in forked/spawned workers)."),
    ("wandb", bool, False, "Also log to W&B."),
    ("wandb_project", str, "shiftkit", "W&B project."),
    ("wandb_mode", Literal["auto", "online", "offline"], "auto",
     "auto: $WANDB_MODE if set, else online if logged in (API key or netrc), else offline."),
    ("sweep", dict | None, None,
     "The recipe's grid, variants and scales: read by `shiftkit sweep`, ignored here."),
)  # fmt: skip
"""``(name, type, default, help)`` of the arguments ``shiftkit fit`` adds to LightningCLI's."""

DESCRIPTION = """\
shiftkit: train a recipe with ShiftMonitor attached (LightningCLI).

Other commands (their own --help):
  shiftkit sweep RECIPE.yaml [--out DIR] [--jobs N] ...   run a recipe's grid, resumably
  shiftkit demo [--norm batch] [--wandb] ...             a minute of the MNIST net with ShiftMonitor
  shiftkit report RUNS_DIR [-o reports/NAME] ...          claims table, figures, README from runs
"""


class ShiftkitCLI(LightningCLI):
    """LightningCLI over :class:`~shiftkit.models.ShiftClassifier` and the DataModules of
    :data:`shiftkit.data.DATAMODULES` (subclass mode: ``--data=shiftkit.data.DigitsDataModule``,
    or ``--data=digits`` through :func:`run_cli`), with ShiftMonitor, run directory, CSV and
    optional W&B logging (see the module docstring).

    Args:
        args: the command line (default ``sys.argv[1:]``), already expanded by
            :func:`~shiftkit.cli.argv.expand_argv`.
        run: run the subcommand (False: parse and instantiate only, as LightningCLI).
        **kwargs: more :class:`~lightning.pytorch.cli.LightningCLI` arguments.

    Attributes:
        run_dir: the run directory (set before the classes are instantiated).
        run_record: ``recipe``, ``variant``, ``seed``, ``config`` and ``config_hash`` of the run.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)  # ShiftClassifier has its own
        kwargs.setdefault("parser_kwargs", {"description": DESCRIPTION})
        self.run_dir: Path | None = None
        self.run_record: dict[str, Any] = {}
        super().__init__(
            ShiftClassifier,
            ArrayDataModule,
            subclass_mode_data=True,
            args=args,
            run=run,
            **kwargs,
        )

    # ------------------------------------------------------------------ parser
    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        import argparse

        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("prog", "shiftkit")
        return super().init_parser(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """LightningCLI's parse, with an unknown key reported as one line naming its file."""
        from jsonargparse import ArgumentError

        parsers = [parser, *getattr(self, "_subcommand_parsers", {}).values()]
        exits = [p.exit_on_error for p in parsers]
        for p in parsers:
            p.exit_on_error = False
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            if not exits[0]:
                raise
            argv = list(args) if isinstance(args, (list, tuple)) else sys.argv[1:]
            message = explain_parse_error(str(err), argv, _known_keys(parsers))
            prog = "shiftkit " + argv[0] if argv and argv[0] in self.subcommands() else "shiftkit"
            print(f"{prog}: error: {message}\n(accepted keys: {prog} --help)", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            for p, flag in zip(parsers, exits):
                p.exit_on_error = flag

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name, kind, default, text in RUN_ARGUMENTS:
            parser.add_argument(f"--{name}", type=kind, default=default, help=text)
        parser.add_class_arguments(
            ShiftMonitor, "monitor", instantiate=False, fail_untyped=False,
            skip={"probe_batch"}, sub_configs=True,
        )  # fmt: skip
        parser.add_argument(
            "--monitor.enabled", type=bool, default=True, help="Attach the ShiftMonitor (fit only)."
        )
        parser.set_defaults({"monitor.keep_histograms": True})
        for name in ("input_shape", "num_classes", "batch_size"):
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

    # ------------------------------------------------------------------ instantiation
    def _subconfig(self):
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        cfg = self._subconfig()
        files = [str(p) for p in (cfg.get("config") or [])]
        record_config, cfg_hash = run_config_hash(cfg.as_dict(), files)
        seed = cfg.get("seed_everything")
        self.run_record = {
            "recipe": record_config["recipe"],
            "variant": record_config["variant"],
            "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            "config": record_config,
            "config_hash": cfg_hash,
        }
        run_dir = cfg.get("run_dir")
        self.run_dir = Path(run_dir) if run_dir else default_run_dir(record_config["recipe"], cfg_hash)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        cfg = self._subconfig()
        parser = self._parser(self.subcommand)
        callbacks = [self._get(self.config_init, key) for key in parser.callback_keys]
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        trainer_config["logger"] = self._loggers(cfg, trainer_config.get("logger"))
        if self.subcommand == "fit":
            monitor_cfg = self._get(self.config_init, "monitor").as_dict()
            if monitor_cfg.pop("enabled", True):
                callbacks.append(ShiftMonitor(**monitor_cfg))
            callbacks.append(
                RunRecorder(self.run_dir, test_after_fit=cfg.test_after_fit, **self.run_record)
            )
        return self._instantiate_trainer(trainer_config, callbacks)

    def _loggers(self, cfg, user_loggers: Any) -> list[Logger]:
        # The CSVLogger comes first: trainer.log_dir (where config.yaml goes) is its log_dir.
        loggers: list[Logger] = [CSVLogger(save_dir=str(self.run_dir), name="", version="")]
        if cfg.wandb:
            mode = resolve_wandb_mode(cfg.wandb_mode)
            if mode == "disabled":
                rank_zero_info("shiftkit: WANDB_MODE=disabled, no W&B logger")
            else:
                rec = self.run_record
                loggers.append(
                    make_wandb_logger(
                        self.run_dir,
                        project=cfg.wandb_project,
                        mode=mode,
                        name=f"{rec['recipe']}/{rec['variant']}/seed{rec['seed']}",
                        group=rec["recipe"],
                        job_type=rec["variant"],
                        tags=[rec["recipe"], rec["variant"]],
                        config={**rec["config"], "config_hash": rec["config_hash"]},
                    )
                )
        if isinstance(user_loggers, Logger):
            loggers.append(user_loggers)
        elif isinstance(user_loggers, list):
            loggers += [lg for lg in user_loggers if isinstance(lg, Logger)]
        return loggers

    # ------------------------------------------------------------------ fit
    def before_fit(self) -> None:
        _split_threads_between_cpu_ranks(self.trainer)
        _start_wandb_or_drop_it(self.trainer)

    def after_fit(self) -> None:
        if not self._subconfig().test_after_fit:
            return
        if forks_workers(self.trainer):
            rank_zero_info(
                "shiftkit: test after fit skipped: the fit ran in forked/spawned workers, which "
                "have exited (use --trainer.strategy=ddp, or `shiftkit test` with a checkpoint)"
            )
            return
        self.trainer.test(self.model, datamodule=self.datamodule)


def _known_keys(parsers) -> list[str]:
    keys = []
    for parser in parsers:
        keys += [a.dest for a in parser._actions if isinstance(getattr(a, "dest", None), str)]
    return keys


def _split_threads_between_cpu_ranks(trainer: Trainer) -> None:
    """Several CPU ranks on one machine share its threads: each gets ``threads // ranks`` (at
    least 1), before the workers start; oversubscribed gloo ranks run many times slower."""
    from lightning.pytorch.accelerators import CPUAccelerator

    if trainer.num_devices > 1 and isinstance(trainer.accelerator, CPUAccelerator):
        per_rank = max(1, torch.get_num_threads() // trainer.num_devices)
        torch.set_num_threads(per_rank)
        os.environ["OMP_NUM_THREADS"] = str(per_rank)


class ConfigResolver:
    """Resolve ``shiftkit fit`` command lines to the config and hash the run would record,
    without instantiating or running anything (the sweep's cell ids).

    Builds the parser once (a second or so); each :meth:`resolve` is one parse.

    Example:
        >>> resolver = ConfigResolver()  # doctest: +SKIP
        >>> cfg, cfg_hash = resolver.resolve(["--config", "recipes/mnist_fig1.yaml"])  # doctest: +SKIP
    """

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended")
            # Any valid command line: this parse only builds the parser.
            self._cli = _ParseOnlyCLI(args=["fit", "--data=shiftkit.data.SyntheticDataModule"])
        self.parser = self._cli.parser
        for parser in (self.parser, *self._cli._subcommand_parsers.values()):
            parser.exit_on_error = False  # raise, so that a sweep can report the cell

    def resolve(self, fit_args: list[str]) -> tuple[dict[str, Any], str]:
        """``(recorded config, config_hash)`` of ``shiftkit fit *fit_args``.

        Raises:
            ArgvError: a shorthand cannot be expanded.
            ValueError: the arguments do not parse (jsonargparse's message), or the seed is not
                an integer (a run with a random seed has no reproducible id).
        """
        from jsonargparse import ArgumentError

        args = expand_argv(["fit", *fit_args])
        try:
            namespace = self.parser.parse_args(args)
        except ArgumentError as err:
            message = explain_parse_error(str(err), args)
            raise ValueError(f"shiftkit fit {' '.join(fit_args)}: {message}") from err
        cfg = namespace["fit"]
        seed = cfg.get("seed_everything")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(
                f"seed_everything must be an integer for a reproducible run id, got {seed!r}"
            )
        return run_config_hash(cfg.as_dict(), [str(p) for p in (cfg.get("config") or [])])


class _ParseOnlyCLI(ShiftkitCLI):
    """Builds the parser and parses; instantiates and runs nothing."""

    def _set_seed(self) -> None:
        pass

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass

    def _run_subcommand(self, subcommand: str) -> None:
        pass


def _start_wandb_or_drop_it(trainer: Trainer) -> None:
    """Start the W&B run now; if it cannot start, warn and go on with the local records only.

    Lightning starts it lazily inside ``fit`` (hyperparameter logging), where a failure
    would end the run. Forked/spawned DDP workers start their own, later: left alone.
    """
    if forks_workers(trainer) or not trainer.is_global_zero:
        return
    from lightning.pytorch.loggers import WandbLogger

    for logger in list(trainer.loggers):
        if isinstance(logger, WandbLogger):
            try:
                logger.experiment  # noqa: B018 -- the property starts the run
            except Exception as err:  # wandb raises many kinds; none may end the training
                rank_zero_warn(
                    f"shiftkit: W&B could not start ({type(err).__name__}: {err}); "
                    "training goes on with the local records (metrics.csv, run directory) only"
                )
                trainer.loggers = [lg for lg in trainer.loggers if lg is not logger]


def run_cli(argv: list[str]) -> ShiftkitCLI:
    """Expand the shorthands of ``argv`` and run :class:`ShiftkitCLI` on it.

    A shorthand that cannot be expanded is reported like a parse error: one line on stderr,
    exit status 2.
    """
    try:
        args = expand_argv(list(argv))
    except (ArgvError, RecipeError, OSError) as err:
        print(f"shiftkit: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    with warnings.catch_warnings():
        # The run directory is ours: config.yaml is already in it when the CSV writer starts.
        warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists")
        # args is sys.argv[1:] after expansion, by design.
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended")
        try:
            cli = ShiftkitCLI(args=args)
        except (DatasetNotFoundError, DatasetFormatError) as err:
            # A user's data directory or file: one message, not a traceback from a DataModule.
            print(f"shiftkit: error: {err}", file=sys.stderr)
            raise SystemExit(1) from err
    _finish_wandb_if_running()
    return cli


def _finish_wandb_if_running() -> None:
    # validate/test/predict with --wandb have no RunRecorder to finish the run.
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
