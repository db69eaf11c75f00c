"""Settings validation pinned exactly: every refusal's text, every bound's edges, every default's value."""

import dataclasses
import os
import threading
import time

import pytest

from synthflow_agi import _checks as checks
from synthflow_agi._errors import ConfigError
from synthflow_agi._settings import (DEFAULT_CONFIG_PATH, MAX_CONFIG_BYTES, MAX_TOKEN_BYTES, Base, config_path,
                                     load_base, load_sources, resolve, validate_base, _read_ini)

TOKEN = "tok-env-0001"
REQUIRED = {"api_token": TOKEN, "model_id": "m-1", "workspace_id": "w-1", "agent_number": "+15551234567"}


def refusal(raw, per_call=None):
    """The exact reason ``resolve`` refuses these values with."""
    with pytest.raises(ConfigError) as caught:
        resolve({**REQUIRED, **raw}, per_call)
    return caught.value.reason


@pytest.fixture
def write(tmp_path):
    """Write a file under tmp_path and return its path."""

    def write(name, data):
        path = tmp_path / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return str(path)

    return write


def test_every_default_value():
    """With only the required keys, each setting has its documented default."""
    settings = resolve(REQUIRED)
    assert dataclasses.asdict(settings) == {
        "cluster": "us", "api_url": "https://api.us.synthflow.ai/v2", "api_token": TOKEN, "model_id": "m-1",
        "workspace_id": "w-1", "agent_number": "+15551234567", "from_number": "", "default_region": "US",
        "sip_host": "sip.us.synthflow.ai", "sip_port": 32681, "sip_transport": "udp", "mode": "dial",
        "dial_technology": "pjsip", "dial_endpoint": "synthflow", "dial_timeout": 30,
        "predial_handler": "synthflow-predial^s^1", "variables": (), "external_id": "", "diversion": "",
        "headers": "", "on_api_failure": "fallback", "allow_insecure_http": False, "timeout": 4.0, "retries": 2,
        "log": "stderr", "breaker_failures": 5, "breaker_cooldown": 30.0, "state_dir": "/run/synthflow-agi",
    }


def test_values_are_trimmed_and_normalised():
    """Surrounding blanks go, the region is upper case, variables are split on commas."""
    settings = resolve({**REQUIRED, "model_id": " m-2 ", "workspace_id": " w-2 ", "agent_number": " +15550001111 ",
                        "from_number": " +15550002222 ", "default_region": " de ", "variables": " a , ,b,",
                        "external_id": " ext ", "diversion": " div ", "headers": " * ", "sip_host": " 127.0.0.1 ",
                        "cluster": " EU ", "api_url": "http://127.0.0.1:9/v2"})
    assert (settings.model_id, settings.workspace_id, settings.agent_number, settings.from_number) == (
        "m-2", "w-2", "+15550001111", "+15550002222")
    assert (settings.default_region, settings.variables, settings.external_id, settings.diversion) == (
        "DE", ("a", "b"), "ext", "div")
    assert (settings.headers, settings.sip_host, settings.cluster) == ("*", "127.0.0.1", "eu")


def test_per_call_values_are_trimmed_and_only_per_call_keys_count():
    """A channel value is stripped; a key outside PER_CALL_KEYS or an empty value changes nothing."""
    settings = resolve(REQUIRED, {"mode": " transfer ", "retries": "9", "log": "syslog", "model_id": ""})
    assert (settings.mode, settings.retries, settings.log, settings.model_id) == ("transfer", 2, "stderr", "m-1")


def test_the_eu_cluster_gives_its_pair():
    """cluster = eu, with no api_url or sip_host, uses the EU API base and SIP host."""
    settings = resolve({**REQUIRED, "cluster": "eu"})
    assert (settings.api_url, settings.sip_host) == ("https://api.eu.synthflow.ai/v2", "sip.eu.synthflow.ai")


def test_missing_required_text():
    """The missing keys are listed in order, comma-separated, blanks counting as missing."""
    with pytest.raises(ConfigError) as caught:
        resolve({"api_token": TOKEN, "model_id": "  ", "agent_number": "+15551234567"})
    assert caught.value.reason == "missing required setting(s): model_id, workspace_id"


@pytest.mark.parametrize("transport, port", [("udp", 32681), ("tcp", 32681), ("tls", 32682)])
def test_default_port_follows_the_transport(transport, port):
    """Only TLS moves the default port to 32682."""
    assert resolve({**REQUIRED, "sip_transport": transport}).sip_port == port


def test_a_cluster_mismatch_is_refused_with_its_text():
    """An EU API with a US SIP host is refused with mismatch's own text."""
    assert refusal({"cluster": "eu", "sip_host": "sip.us.synthflow.ai"}) == (
        "api_url is in the eu cluster but sip_host is in the us cluster: the INVITE could never find the prepared call")


@pytest.mark.parametrize("key, low, high, below, above, kind", [
    ("sip_port", "1", "65535", "0", "65536", int),
    ("dial_timeout", "1", "3600", "0", "3601", int),
    ("timeout", "0.1", "60", "0.09", "60.01", float),
    ("retries", "0", "10", "-1", "11", int),
    ("breaker_failures", "0", "1000", "-1", "1001", int),
    ("breaker_cooldown", "0.1", "3600", "0.09", "3600.01", float),
])
def test_number_bounds_are_inclusive(key, low, high, below, above, kind):
    """Each bound itself is accepted; one step outside is refused with '<key> <value> is outside <low>..<high>'."""
    assert getattr(resolve({**REQUIRED, key: low}), key) == kind(low)
    assert getattr(resolve({**REQUIRED, key: high}), key) == kind(high)
    bounds = {"sip_port": "1..65535", "dial_timeout": "1..3600", "timeout": "0.1..60.0", "retries": "0..10",
              "breaker_failures": "0..1000", "breaker_cooldown": "0.1..3600.0"}[key]
    assert refusal({key: below}) == "%s %s is outside %s" % (key, kind(below), bounds)
    assert refusal({key: above}) == "%s %s is outside %s" % (key, kind(above), bounds)


@pytest.mark.parametrize("raw, text", [
    ({"sip_port": "5060x"}, "sip_port '5060x' is not a number"),
    ({"timeout": "x" * 50}, "timeout '%s' is not a number" % ("x" * 40)),
    ({"mode": "Bridge"}, "mode 'bridge' is not one of transfer, dial, auto"),
    ({"mode": "b" * 50}, "mode '%s' is not one of transfer, dial, auto" % ("b" * 40)),
    ({"sip_transport": "sctp"}, "sip_transport 'sctp' is not one of udp, tcp, tls"),
    ({"cluster": "asia"}, "cluster 'asia' is not one of us, eu, global"),
    ({"on_api_failure": "retry"}, "on_api_failure 'retry' is not one of fallback, direct"),
    ({"log": "file"}, "log 'file' is not one of stderr, syslog, both"),
    ({"dial_technology": "iax2"}, "dial_technology 'iax2' is not one of pjsip, sip"),
    ({"dial_technology": "sip", "sip_transport": "tls"},
     "dial_technology sip (chan_sip) dials sip_host over UDP only; use pjsip for tls"),
    ({"allow_insecure_http": "maybe"}, "allow_insecure_http 'maybe' is not yes or no"),
    ({"allow_insecure_http": "m" * 30}, "allow_insecure_http '%s' is not yes or no" % ("m" * 20)),
    ({"dial_endpoint": "a,b"}, "dial_endpoint 'a,b' holds characters a dialplan argument cannot carry"),
    ({"dial_endpoint": "  "}, "dial_endpoint '' holds characters a dialplan argument cannot carry"),
    ({"dial_endpoint": "e" * 70 + ","}, "dial_endpoint '%s' holds characters a dialplan argument cannot carry" % ("e" * 60)),
    ({"predial_handler": "h(x)"}, "predial_handler 'h(x)' holds characters a dialplan argument cannot carry"),
    ({"sip_host": "a;b"}, "sip_host 'a;b' is not a host name or address"),
    ({"state_dir": "run/x"}, "state_dir 'run/x' is not an absolute path"),
    ({"state_dir": "r" * 70}, "state_dir '%s' is not an absolute path" % ("r" * 60)),
    ({"state_dir": "/run/\x07"}, "state_dir holds control characters or is longer than 1024 characters"),
    ({"state_dir": "/" + "d" * 1024}, "state_dir holds control characters or is longer than 1024 characters"),
    ({"api_token": "1234567"}, "api_token is too short to be a Synthflow API key (7 characters, at least 8)"),
    ({"api_token": "1234 5678"}, "api_token holds spaces or control characters; it cannot go into an Authorization header"),
    ({"api_token": "1234\x7f5678"}, "api_token holds spaces or control characters; it cannot go into an Authorization header"),
])
def test_refusal_texts_are_exact(raw, text):
    """Each refused value gets one exact text naming the key and a bounded, quoted part of the value."""
    assert refusal(raw) == text


@pytest.mark.parametrize("value, expected", [
    ("yes", True), ("TRUE", True), (" on ", True), ("1", True),
    ("no", False), ("False", False), ("off", False), ("0", False),
])
def test_flag_words(value, expected):
    """The four yes-words and the four no-words, in any case."""
    assert checks.flag({"allow_insecure_http": value}, "allow_insecure_http") is expected


@pytest.mark.parametrize("value, expected", [
    (" /run/synthflow-agi/ ", "/run/synthflow-agi"), ("/", "/"), ("///", "/"), ("/" + "d" * 1023, "/" + "d" * 1023),
])
def test_state_dir_accepted_forms(value, expected):
    """Absolute paths up to 1024 characters, trailing slashes dropped, the root kept as '/'."""
    assert checks.state_dir(value) == expected


def test_token_of_exactly_the_minimum_length():
    """Eight printable characters are a token."""
    assert checks.token(" 12345678 ") == "12345678"


@pytest.mark.parametrize("url, text", [
    ("https://api.example/ v2", "api_url holds spaces or control characters"),
    ("https://api.example/\x00", "api_url holds spaces or control characters"),
    ("http://[127.0.0.1/v2", "api_url is not a valid URL: Invalid IPv6 URL"),
    ("ftp://api.example/v2", "api_url must start with https:// (scheme 'ftp')"),
    ("verylongscheme://h/v2", "api_url must start with https:// (scheme 'verylongsc')"),
    ("https:///v2", "api_url has no host"),
    ("https://user@api.example/v2", "api_url must not carry a user name or password; the token is the credential"),
    ("https://:pw@api.example/v2", "api_url must not carry a user name or password; the token is the credential"),
    ("https://api.example/v2?x=1", "api_url must not carry a query or fragment"),
    ("https://api.example/v2#top", "api_url must not carry a query or fragment"),
    ("https://api.example/v2?", "api_url must not carry a query or fragment"),
    ("https://api.example/v2#", "api_url must not carry a query or fragment"),
    ("http://10.0.0.1/v2", "api_url uses plain http to 10.0.0.1, which would send the token in clear text; "
                           "use https, or set allow_insecure_http = yes"),
    ("http://%s/v2" % ("h" * 90), "api_url uses plain http to %s, which would send the token in clear text; "
                                  "use https, or set allow_insecure_http = yes" % ("h" * 80)),
])
def test_api_url_refusals_are_exact(url, text):
    """Each unusable api_url is refused with one exact text."""
    with pytest.raises(ConfigError) as caught:
        checks.api_url(url, False)
    assert caught.value.reason == text


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v2", "http://127.8.9.10/v2", "http://localhost/v2",
                                 "http://LocalHost./v2", "http://[::1]:9/v2"])
def test_plain_http_to_this_machine_is_allowed(url):
    """Loopback addresses and localhost (any case, with or without the root dot) may use plain http."""
    assert checks.api_url(url + "/", False) == url


def test_plain_http_elsewhere_with_the_explicit_yes():
    """allow_insecure_http = yes lets plain http go off this machine."""
    assert checks.api_url("http://10.0.0.1/v2", True) == "http://10.0.0.1/v2"
    assert resolve({**REQUIRED, "api_url": "http://10.0.0.1/v2", "allow_insecure_http": "yes"}).allow_insecure_http


def test_first_line_of_an_exception():
    """The first line, cut at 120 characters; an exception with no text gives its class name."""
    assert checks.first_line(ValueError("one\ntwo")) == "one"
    assert checks.first_line(ValueError("x" * 200)) == "x" * 120
    assert checks.first_line(KeyError()) == "KeyError"


def test_public_items_show_the_token_only_as_set_or_not():
    """The token becomes '<set, N characters>' or '<not set>'; tuples are comma-joined; the rest str()."""
    settings = resolve({**REQUIRED, "variables": "a,b"})
    shown = dict(settings.public_items())
    assert shown["api_token"] == "<set, 12 characters>"
    assert (shown["variables"], shown["sip_port"], shown["timeout"]) == ("a,b", "32681", "4.0")
    assert dict(dataclasses.replace(settings, api_token="").public_items())["api_token"] == "<not set>"
    assert [key for key, _ in settings.public_items()] == [field.name for field in dataclasses.fields(settings)]


def test_config_path_named_or_default():
    """SYNTHFLOW_CONFIG names the file explicitly; an empty one falls back to the default path."""
    assert config_path({"SYNTHFLOW_CONFIG": "/tmp/x.conf"}) == ("/tmp/x.conf", True)
    assert config_path({"SYNTHFLOW_CONFIG": ""}) == (DEFAULT_CONFIG_PATH, False)
    assert DEFAULT_CONFIG_PATH == "/etc/asterisk/synthflow.conf"


def test_an_unnamed_missing_file_is_no_file(tmp_path):
    """The default path being absent is not an error: no values come from it."""
    assert _read_ini(str(tmp_path / "absent.conf"), required=False) == {}


def test_environment_names_are_synthflow_upper_keys(write):
    """SYNTHFLOW_<KEY> sets <key>; an empty one leaves the file's value."""
    path = write("s.conf", "[general]\nmode = transfer\ndial_endpoint = from-file\n")
    raw = load_sources({"SYNTHFLOW_CONFIG": path, "SYNTHFLOW_DIAL_ENDPOINT": "from-env", "SYNTHFLOW_MODE": ""})
    assert (raw["dial_endpoint"], raw["mode"]) == ("from-env", "transfer")


def test_config_file_size_limit(write):
    """A file of exactly MAX_CONFIG_BYTES is read; one byte more is refused naming the limit in KiB."""
    body = "[general]\nmode = dial\n"
    exact = write("exact.conf", body + "#" * (MAX_CONFIG_BYTES - len(body) - 1) + "\n")
    assert os.path.getsize(exact) == MAX_CONFIG_BYTES
    assert _read_ini(exact, required=True) == {"mode": "dial"}
    over = write("over.conf", body + "#" * (MAX_CONFIG_BYTES - len(body)) + "\n")
    with pytest.raises(ConfigError) as caught:
        _read_ini(over, required=True)
    assert caught.value.reason == "config file %s is larger than 256 KiB" % over


def test_config_file_refusal_texts(write, tmp_path):
    """Missing (when named), unreadable, without [general], or with unknown keys: one exact text each."""
    missing = str(tmp_path / "nope.conf")
    cases = [
        (missing, "config file %s (named by SYNTHFLOW_CONFIG) does not exist" % missing),
        (write("a.conf", "mode = dial\n"), "cannot read config file {}: File contains no section headers."),
        (write("b.conf", b"[general]\nmode = \xff\n"), "cannot read config file {}: 'utf-8' codec can't decode "
                                                       "byte 0xff in position 17: invalid start byte"),
        (write("c.conf", "[other]\n"), "config file {} has no [general] section"),
        (write("d.conf", "[general]\nzeta = 1\nalpha = 2\nmode = dial\n"),
         "config file {}: unknown setting(s) alpha, zeta"),
    ]
    for path, text in cases:
        with pytest.raises(ConfigError) as caught:
            _read_ini(path, required=True)
        assert caught.value.reason == text.format(path)


def test_config_values_keep_percent_signs_and_drop_comments(write):
    """No interpolation ('%' stays), ';' and '#' start comments, even inline, and values are stripped."""
    path = write("s.conf", "; a comment\n# another\n[general]\napi_token = sk-%live-1234 ; the key\n"
                           "mode = dial # inline\n[DEFAULT]\nmodel_id = never-merged\n")
    assert _read_ini(path, required=True) == {"api_token": "sk-%live-1234", "mode": "dial"}


def test_token_file_rules(write, tmp_path, monkeypatch):
    """The token file is read (with ~ expanded) only when api_token is unset, up to MAX_TOKEN_BYTES."""
    conf = write("s.conf", "[general]\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    write("tok", "t" * MAX_TOKEN_BYTES + "\n")
    env = {"SYNTHFLOW_CONFIG": conf, "SYNTHFLOW_API_TOKEN_FILE": "~/tok"}
    assert load_sources(env)["api_token"] == "t" * MAX_TOKEN_BYTES
    assert load_sources({**env, "SYNTHFLOW_API_TOKEN": "direct-token"})["api_token"] == "direct-token"
    cases = [
        (write("big", "t" * (MAX_TOKEN_BYTES + 1)), "api_token_file {} holds more than 4096 bytes: not a token"),
        (write("empty", " \n"), "api_token_file {} is empty"),
        (str(tmp_path / "absent"), "cannot read api_token_file {0}: [Errno 2] No such file or directory: '{0}'"),
    ]
    for path, text in cases:
        with pytest.raises(ConfigError) as caught:
            load_sources({"SYNTHFLOW_CONFIG": conf, "SYNTHFLOW_API_TOKEN_FILE": path})
        assert caught.value.reason == text.format(path)


def test_base_keeps_the_reason_and_the_raw_values(write, tmp_path):
    """A file that cannot be read is a Base with its reason and no values; one that fails validation keeps them."""
    missing = str(tmp_path / "nope.conf")
    unreadable = load_base({"SYNTHFLOW_CONFIG": missing})
    assert (unreadable.raw, unreadable.error, unreadable.usable) == (
        {}, "config file %s (named by SYNTHFLOW_CONFIG) does not exist" % missing, False)
    conf = write("s.conf", "[general]\n")
    invalid = load_base({"SYNTHFLOW_CONFIG": conf, "SYNTHFLOW_API_TOKEN": " short ", "SYNTHFLOW_LOG": " SysLog "})
    assert invalid.error == "api_token is too short to be a Synthflow API key (5 characters, at least 8)"
    assert invalid.secrets == (" short ", "short")
    assert invalid.log == "syslog"
    good = load_base({"SYNTHFLOW_CONFIG": conf, "SYNTHFLOW_API_TOKEN": TOKEN})
    assert (good.error, good.usable, good.secrets, good.log) == ("", True, (TOKEN,), "stderr")


@pytest.mark.parametrize("raw, log", [({}, "stderr"), ({"log": "both"}, "both"), ({"log": "file"}, "stderr")])
def test_base_log_target(raw, log):
    """The log target of a Base is its valid value, else stderr."""
    assert Base(raw).log == log
    assert Base({}).secrets == ()


def test_validate_base_stands_in_only_for_what_a_call_may_supply():
    """Blank model, workspace and agent number are stood in for; a present value is still checked."""
    settings = validate_base({"api_token": TOKEN, "model_id": " ", "agent_number": ""})
    assert (settings.model_id, settings.workspace_id, settings.agent_number) == ("per-call", "per-call", "+10000000000")
    assert validate_base({"api_token": TOKEN, "model_id": "real"}).model_id == "real"
    with pytest.raises(ConfigError) as caught:
        validate_base({"api_token": TOKEN, "dial_timeout": "0"})
    assert caught.value.reason == "dial_timeout 0 is outside 1..3600"
    with pytest.raises(ConfigError) as caught:
        validate_base({})
    assert caught.value.reason == "missing required setting(s): api_token"


def test_config_path_without_the_variable_is_the_default():
    """No SYNTHFLOW_CONFIG at all means the default path, not named."""
    assert config_path({}) == (DEFAULT_CONFIG_PATH, False)


def test_a_duplicate_key_names_the_file_and_line(write):
    """configparser's own complaint is kept (first line), naming the file it read."""
    path = write("dup.conf", "[general]\nmode = dial\nmode = transfer\n")
    with pytest.raises(ConfigError) as caught:
        _read_ini(path, required=True)
    complaint = "While reading from '%s' [line  3]: option 'mode' in section 'general' already exists" % path
    assert caught.value.reason == "cannot read config file %s: %s" % (path, complaint[:120])


def _endless(path, size):
    """A FIFO at ``path`` that yields ``size`` bytes and then stays open, never reaching end of file."""
    os.mkfifo(path)
    release = threading.Event()

    def feed():
        with open(path, "wb") as pipe:
            pipe.write(b"[general]\n" + b"#" * (size - 10))
            pipe.flush()
            release.wait(10)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return release, feeder


def test_a_config_source_that_never_ends_is_read_only_to_the_limit(tmp_path):
    """Reading stops one byte past MAX_CONFIG_BYTES, so a file that never ends is refused, not waited for."""
    path = str(tmp_path / "endless.conf")
    release, feeder = _endless(path, MAX_CONFIG_BYTES + 1)
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError) as caught:
            _read_ini(path, required=True)
    finally:
        release.set()
        feeder.join(5)
    assert caught.value.reason == "config file %s is larger than 256 KiB" % path
    assert time.monotonic() - started < 2.0  # the feeder holds the FIFO open for 10 s


def test_a_token_source_that_never_ends_is_read_only_to_the_limit(tmp_path, write):
    """Reading stops one byte past MAX_TOKEN_BYTES, so a token file that never ends is refused, not waited for."""
    path = str(tmp_path / "endless-token")
    os.mkfifo(path)
    release = threading.Event()

    def feed():
        with open(path, "wb") as pipe:
            pipe.write(b"t" * (MAX_TOKEN_BYTES + 1))
            pipe.flush()
            release.wait(10)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError) as caught:
            load_sources({"SYNTHFLOW_CONFIG": write("s.conf", "[general]\n"), "SYNTHFLOW_API_TOKEN_FILE": path})
    finally:
        release.set()
        feeder.join(5)
    assert caught.value.reason == "api_token_file %s holds more than 4096 bytes: not a token" % path
    assert time.monotonic() - started < 2.0  # the feeder holds the FIFO open for 10 s


def test_only_slashes_are_trimmed_from_paths_and_urls():
    """A trailing 'X' is part of the value; only '/' is trimmed."""
    assert checks.state_dir("/srv/BOX/") == "/srv/BOX"
    assert checks.api_url("https://api.example/XX/", False) == "https://api.example/XX"


def test_a_value_made_of_every_allowed_character_is_safe():
    """The allowed set itself is allowed (a subset, not a strict one)."""
    allowed = frozenset("ab^")
    assert checks.safe("k", "^ab", allowed) == "^ab"
