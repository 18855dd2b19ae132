"""Configuration: safe defaults, and a plain-words error naming the variable that is wrong."""
import pytest

from server.config import ConfigError, load_config


def test_defaults_serve_both_loopbacks_on_8080_with_sqlite_under_var(tmp_path):
    config = load_config({"GOVCHAT_VAR_DIR": str(tmp_path)})
    assert config.hosts == ("127.0.0.1", "::1") and config.port == 8080
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path}/govchat.db"
    assert config.rasa_url == "http://127.0.0.1:5005" and config.rasa_manage


def test_settings_are_read(tmp_path):
    config = load_config({"GOVCHAT_PORT": "9000", "RASA_PORT": "5100", "GOVCHAT_HOST": "0.0.0.0, [::]",
                          "RASA_TIMEOUT": "2.5", "RASA_MANAGE": "0", "GOVCHAT_ACTION_TOKEN": "s3cret"})
    assert config.port == 9000 and config.rasa_url == "http://127.0.0.1:5100"
    assert config.hosts == ("0.0.0.0", "::") and config.rasa_timeout == 2.5
    assert not config.rasa_manage and config.action_token == "s3cret"


@pytest.mark.parametrize("env, message", [
    ({"GOVCHAT_PORT": "eighty"}, "GOVCHAT_PORT must be a whole number, got 'eighty'"),
    ({"GOVCHAT_PORT": "0"}, "GOVCHAT_PORT must be at least 1"),
    ({"RASA_TIMEOUT": "soon"}, "RASA_TIMEOUT must be a number"),
    ({"GOVCHAT_HOST": " , "}, "GOVCHAT_HOST must name at least one address"),
    ({"DATABASE_URL": "postgresql://x/y"}, "DATABASE_URL must start with"),
])
def test_bad_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env)
