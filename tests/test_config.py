"""Config precedence (defaults < file < env < flags), provenance, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy_ray.config import Settings, commented_defaults, load_config
from privacy_ray.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return str(p)


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = load_config(environ={})
    assert r.path is None
    assert r.settings.pipeline.n_messages == 5000
    assert r.sources["pipeline.n_messages"] == "default"


def test_precedence_file_env_flag(tmp_path):
    path = write(
        tmp_path, "pipeline:\n  seed: 1\n  n_messages: 10\nembedding:\n  cpu_batch_size: 8\n"
    )
    env = {"PRIVACY_RAY_PIPELINE__SEED": "2", "PRIVACY_RAY_EMBEDDING__CPU_BATCH_SIZE": "16"}
    r = load_config(path, overrides={"pipeline.seed": 3, "pipeline.n_messages": None}, environ=env)
    s = r.settings
    assert (s.pipeline.seed, s.pipeline.n_messages, s.embedding.cpu_batch_size) == (3, 10, 16)
    assert r.sources["pipeline.seed"] == "flag:pipeline.seed"
    assert r.sources["pipeline.n_messages"] == f"file:{path}"
    assert r.sources["embedding.cpu_batch_size"] == "env:PRIVACY_RAY_EMBEDDING__CPU_BATCH_SIZE"


def test_config_path_env_and_seed_variables(tmp_path):
    path = write(tmp_path, "runtime:\n  log_level: DEBUG\n")
    r = load_config(environ={"CONFIG_PATH": path, "ENVIRONMENT": "staging"})
    assert r.settings.runtime.log_level == "DEBUG"
    assert r.settings.runtime.environment == "staging"
    r = load_config(environ={"CONFIG_PATH": path, "LOG_LEVEL": "warning"})
    assert r.settings.runtime.log_level == "WARNING"


def test_nested_resources_from_env(tmp_path):
    env = {"PRIVACY_RAY_PIPELINE__RESOURCES__EMBED__MAX_ACTORS": "3"}
    r = load_config(environ=env)
    assert r.settings.resources_for("embed").max_actors == 3
    # a partial override replaces only the named key: the stage's other values and the other
    # stages keep their defaults
    assert r.settings.resources_for("embed").batch_size == 256
    assert r.settings.resources_for("features").num_cpus == 1.0


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "pipeline:\n  sede: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'pipeline.sede' in .*cfg.yaml"):
        load_config(path, environ={})


def test_wrong_type_names_key_and_source(tmp_path):
    path = write(tmp_path, "embedding:\n  cpu_batch_size: lots\n")
    with pytest.raises(ConfigError, match=r"'embedding.cpu_batch_size' in .*cfg.yaml"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="PRIVACY_RAY_PIPELINE__SEED"):
        load_config(environ={"PRIVACY_RAY_PIPELINE__SEED": "abc"})


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "pipeline: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"), environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), environ={})


def test_shipped_config_matches_generator():
    assert (REPO / "config.yaml").read_text() == commented_defaults()
    r = load_config(str(REPO / "config.yaml"), environ={})
    assert r.settings == Settings()
