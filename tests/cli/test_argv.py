"""The command line's shorthands and the dispatcher of `shiftkit` subcommands."""

import pytest

from shiftkit.cli.argv import ArgvError, expand_argv, overrides_to_args
from shiftkit.cli.errors import explain_parse_error
from shiftkit.command import SUBCOMMANDS, main


def test_data_names_expand_to_class_paths():
    assert expand_argv(["fit", "--data", "synthetic", "--data.dim=8"]) == [
        "fit", "--data=shiftkit.data.SyntheticDataModule", "--data.dim=8"
    ]  # fmt: skip
    # Not a DATAMODULES name: passed on for jsonargparse to resolve (or reject).
    assert expand_argv(["fit", "--data=my.pkg.MyData"]) == ["fit", "--data=my.pkg.MyData"]


def test_variant_overrides_apply_where_the_variant_appears(tiny_recipe):
    args = expand_argv(["fit", "-c", str(tiny_recipe), "--model.lr=0.5", "--variant", "bn",
                        "--model.norm=layer"])  # fmt: skip
    assert args == ["fit", "-c", str(tiny_recipe), "--model.lr=0.5", "--variant=bn",
                    "--model.norm=batch", "--model.norm=layer"]  # fmt: skip


def test_variant_before_any_config_is_only_a_label(tiny_recipe):
    # No config with variants before it: nothing to expand (and nothing to check against).
    assert expand_argv(["fit", "--variant=mine", "--config", str(tiny_recipe)]) == [
        "fit", "--variant=mine", "--config", str(tiny_recipe)
    ]  # fmt: skip


def test_unknown_variant_lists_the_known_ones(tiny_recipe):
    with pytest.raises(ArgvError, match=r"--variant=bnn: no such variant .* known variants: plain, bn"):
        expand_argv(["fit", "--config", str(tiny_recipe), "--variant=bnn"])


def test_overrides_to_args_round_trips_types():
    assert overrides_to_args({"a.b": "none", "c": None, "d": True, "e": [1, 2.5], "f": 3}) == [
        "--a.b=none", "--c=null", "--d=true", "--e=[1, 2.5]", "--f=3"
    ]  # fmt: skip


def test_parse_error_that_is_not_about_a_key_is_passed_on():
    message = 'Parser key "model.lr":\n  Expected a <class \'float\'>. Got value: "fast"'
    assert explain_parse_error(message, ["fit", "--model.lr=fast"]) == message


@pytest.mark.parametrize("name", ["demo", "report", "workspace"])
def test_subcommands_reach_their_own_parsers(name, capsys):
    assert name in SUBCOMMANDS
    with pytest.raises(SystemExit) as exit_:
        main([name, "--no-such-option"])
    assert exit_.value.code == 2
    assert f"shiftkit {name}" in capsys.readouterr().err  # that command's argparse usage line
