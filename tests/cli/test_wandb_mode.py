"""`--wandb` is online only for a logged-in user, and deciding that needs no network."""

import pytest

from shiftkit.cli.wandb_setup import resolve_wandb_mode, wandb_logged_in


@pytest.fixture
def nobody(tmp_path, monkeypatch):
    """No API key, no WANDB_MODE, an empty home: a user who never ran `wandb login`."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_nobody_gets_offline(nobody):
    assert not wandb_logged_in()
    assert resolve_wandb_mode("auto") == "offline"


def test_api_key_in_the_environment_means_online(nobody, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"


@pytest.mark.parametrize(
    "host, base_url, logged_in",
    [
        ("api.wandb.ai", None, True),
        ("wandb.example.org", None, False),  # another host's password is not a W&B login
        ("wandb.example.org", "https://wandb.example.org", True),
    ],
)
def test_netrc_entry_for_the_wandb_host(nobody, monkeypatch, host, base_url, logged_in):
    netrc = nobody / ".netrc"
    netrc.write_text(f"machine {host}\n  login user\n  password {'k' * 40}\n")
    netrc.chmod(0o600)
    if base_url:
        monkeypatch.setenv("WANDB_BASE_URL", base_url)
    assert wandb_logged_in() is logged_in
    assert resolve_wandb_mode() == ("online" if logged_in else "offline")


def test_wandb_mode_variable_and_explicit_mode_win(nobody, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"
    assert resolve_wandb_mode("online") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_wandb_mode("offline") == "offline"
