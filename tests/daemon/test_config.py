"""The daemon configuration: the dumped reference, errors naming the key, overrides."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from edge_asc import config as cfgmod
from edge_asc.config import ConfigError
from edge_asc.config import apply_overrides
from edge_asc.daemon.config import DaemonConfig, SourceSpec, dump_yaml, load_config, reference_rows



# --- configuration ----------------------------------------------------------------------------------


def test_dumped_config_is_complete_commented_and_loads_back(tmp_path):
    text = dump_yaml()
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == DaemonConfig()
    keys = {key for key, *_ in reference_rows()}
    for key in keys:  # every key is in the dump, with a comment
        leaf = key.split(".")[-1]
        assert any(line.strip().startswith(f"{leaf}:") and "#" in line for line in text.splitlines()), key
    docs = (REPO / "docs" / "config.md").read_text()
    missing = [k for k in keys if f"`{k}`" not in docs]
    assert not missing, f"docs/config.md does not document {missing}"


def test_config_errors_name_the_key_and_the_accepted_values(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("decision:\n  k: 3\n  windw: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key decision.windw; accepted keys: decision.k, decision.mode"):
        load_config(bad)
    bad.write_text("decision:\n  mode: majority\n")
    with pytest.raises(ConfigError, match="decision.mode: 'majority' is not accepted; accepted values: window, sliding"):
        load_config(bad)
    bad.write_text("source: microphone\n")
    with pytest.raises(ConfigError, match="accepted forms: mic, mic:NAME_OR_INDEX, file:PATH, stdin"):
        load_config(bad)
    bad.write_text("server:\n  tcp: 8765\n")
    with pytest.raises(ConfigError, match="server.tcp: expected str or NoneType, got 8765"):
        load_config(bad)
    with pytest.raises(ConfigError, match="audio: channels must be from 1 to 64"):
        apply_overrides(DaemonConfig(), {"audio.channels": 0})


def test_non_finite_or_huge_waits_and_search_breadth_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    for key, value in (("no_data_timeout", ".nan"), ("retry_min", ".inf"), ("retry_max", ".nan"), ("retry_min", "-1.0"), ("no_data_timeout", "1e9")):
        bad.write_text(f"audio:\n  {key}: {value}\n")
        with pytest.raises(ConfigError, match=f"audio: {key} must be a positive number of seconds"):
            load_config(bad)
    with pytest.raises(ConfigError, match="retry_max must be at least retry_min"):
        apply_overrides(DaemonConfig(), {"audio.retry_min": 5.0, "audio.retry_max": 1.0})
    with pytest.raises(ConfigError, match="inference: ef must be from 1 to 10000"):
        apply_overrides(DaemonConfig(), {"inference.ef": 10**9})
    assert apply_overrides(DaemonConfig(), {"inference.ef": 10000}).inference.ef == 10000


def test_a_key_yaml_reads_as_a_boolean_or_number_is_named_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("yes: 1\n3: 2\naudio:\n  on: true\n")  # YAML 1.1: yes and on are booleans
    with pytest.raises(ConfigError, match=r"unknown key 3 \(and True\); accepted keys: model"):
        load_config(bad)
    bad.write_text("audio:\n  on: true\n")
    with pytest.raises(ConfigError, match=r"unknown key audio.True; accepted keys: audio.samplerate"):
        load_config(bad)


def test_flags_given_on_the_command_line_win_over_the_file_and_absent_ones_do_not(tmp_path):
    from edge_asc.cli import build_parser
    from edge_asc.commands import run
    from edge_asc.commands.common import daemon_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"source": "mic:usb", "decision": {"k": 5, "mode": "sliding"}}))
    args = build_parser().parse_args(["run", "--config", str(path), "--k", "2", "--source", "stdin"])
    cfg = daemon_config(args, run.FLAGS)
    assert (cfg.decision.k, cfg.decision.mode, cfg.source_spec) == (2, "sliding", SourceSpec("stdin"))
    assert SourceSpec.parse("mic:USB Mic") == SourceSpec("mic", "USB Mic")
    assert SourceSpec.parse("file:/a:b.wav") == SourceSpec("file", "/a:b.wav")
    assert cfgmod.to_dict(cfg)["decision"] == {"k": 2, "mode": "sliding", "k_max": 10, "neighbours": 1, "tie_break": "distance", "enrolled_only": False, "unknown_threshold": None, "unknown_ratio": 1.0, "silence_dbfs": -90.0}


def test_the_ratio_test_and_the_threshold_say_their_distances_are_squared():
    help_of = {key: text for key, _, _, text in reference_rows()}
    assert "squared" in help_of["decision.unknown_ratio"] and "squared" in help_of["decision.unknown_threshold"]


# --- mqtt and metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("mqtt://broker.local", ("mqtt", "broker.local", 1883)),
    ("mqtts://broker.local", ("mqtts", "broker.local", 8883)),
    ("mqtt://10.0.0.2:1884/", ("mqtt", "10.0.0.2", 1884)),
    ("mqtt://[::1]:1883", ("mqtt", "::1", 1883)),
])
def test_an_mqtt_url_gives_scheme_host_and_the_scheme_s_default_port(url, expected):
    from edge_asc.daemon.config import parse_mqtt_url

    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize("key,value,words", [
    ("url", "mqtt://edge:secret@broker", "no user or password in the URL"),
    ("url", "http://broker", "mqtt://HOST[:PORT]"),
    ("url", "mqtt://broker:99999", "HOST:PORT"),
    ("url", "mqtt://broker/topic", "without a path"),
    ("device_id", "kitchen/1", "device_id"),
    ("qos", 3, "qos"),
    ("keepalive", 1, "keepalive"),
    ("topic_prefix", "edge-asc/#", "wildcards"),
    ("topic_prefix", "/edge-asc", "leading or trailing"),
    ("reconnect_max", 0.1, "reconnect_max"),
    ("tls_cert", "/etc/cert.pem", "tls_cert and tls_key go together"),
    ("tls_ca", "/etc/ca.pem", "for mqtts:// URLs"),
])
def test_a_bad_mqtt_setting_is_refused_naming_it(tmp_path, key, value, words):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"mqtt": {"url": "mqtt://broker"} | {key: value}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert words in str(err.value) and "secret" not in str(err.value)


def test_the_mqtt_password_is_not_in_the_config_s_repr_and_metrics_default_to_loopback(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("mqtt:\n  url: mqtt://broker\n  password: hunter2\nmetrics:\n  listen: '9108'\n")
    cfg = load_config(path)
    assert cfg.mqtt.password == "hunter2" and "hunter2" not in repr(cfg)
    assert cfg.metrics.address == ("127.0.0.1", 9108)
    assert apply_overrides(cfg, {"metrics.listen": "0.0.0.0:9200"}).metrics.address == ("0.0.0.0", 9200)
    with pytest.raises(ConfigError, match="metrics.listen"):
        apply_overrides(cfg, {"metrics.listen": "localhost:http"})
