"""contrib/kubernetes: every manifest against the Kubernetes API schemas, and the manifests against each other.

kubernetes-validate bundles the OpenAPI-derived JSON schemas of each Kubernetes release, so
this runs offline.  Strict mode also refuses fields the API does not know (a typo such as
``readOnlyRootFileSystem`` would otherwise be dropped silently by the API server).
"""
import re
import socket
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from synthflow_agi._settings import load_base
from tests.support.fastagi_peer import FastAgiServerProcess
from tests.support.http_get import get

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "contrib" / "kubernetes"
DOCKERFILE = REPO / "docker" / "fastagi.Dockerfile"
# The oldest release still common in managed clusters, and the newest the package knows.
VERSIONS = ["1.27.0", kubernetes_validate.utils.latest_version() + ".0"]
# From the README's Performance section: idle resident memory, and the cost of a call in flight.
IDLE_BYTES = 18 * 10 ** 6
PER_CALL_BYTES = 100 * 10 ** 3
MIB = 2 ** 20


def documents():
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path.name, doc))
    return found


def one(kind, name=None):
    matches = [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


def container():
    return one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def option(args, name):
    return args[args.index(name) + 1]


def listen_port(args, name):
    return int(option(args, name).rsplit(":", 1)[1])


def port_number(port):
    """A probe's or Service's port, by number or by the container port's name."""
    return port if isinstance(port, int) else {p["name"]: p["containerPort"] for p in container()["ports"]}[port]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mounted_settings(tmp_path):
    """The ConfigMap's synthflow.conf with the Secret's token where the pod would see it, relocated under tmp_path."""
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    config_map, secret = one("ConfigMap"), one("Secret")
    (conf_key,) = config_map["data"]
    (token_key,) = secret["stringData"]
    token_path = "%s/%s" % (mounts["token"], token_key)
    token_file = tmp_path / token_key
    token_file.write_text(secret["stringData"][token_key] + "\n")
    conf = tmp_path / conf_key
    conf.write_text(config_map["data"][conf_key].replace(token_path, str(token_file)))
    return conf


def mebibytes(quantity):
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * {"Mi": 1, "Gi": 1024}[unit]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name, doc", documents(), ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_manifest_is_valid_for_the_kubernetes_api(name, doc, version):
    """Each document of contrib/kubernetes validates strictly against that Kubernetes release's schema."""
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_folder_holds_what_an_operator_applies():
    """The Deployment, both Services, the PodDisruptionBudget, the ConfigMap, the Secret example and the NetworkPolicy are there."""
    kinds = sorted(d["kind"] for _, d in documents())
    assert kinds == ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service", "Service"]


def test_every_selector_picks_the_deployments_pods():
    """The Services, the PodDisruptionBudget and the NetworkPolicy select exactly the labels the pods carry."""
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_labels
    for name in ("synthflow-fastagi", "synthflow-fastagi-srv"):
        assert one("Service", name)["spec"]["selector"] == pod_labels
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == pod_labels
    assert one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == pod_labels


def test_services_reach_the_port_the_server_listens_on():
    """Both Services send port 4573 to the container port named agi, which is the port of --listen."""
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"agi": listen_port(container()["args"], "--listen"),
                     "metrics": listen_port(container()["args"], "--metrics-listen")}
    assert option(container()["args"], "--listen").startswith("0.0.0.0:")  # reachable from outside the pod
    for name in ("synthflow-fastagi", "synthflow-fastagi-srv"):
        (port,) = one("Service", name)["spec"]["ports"]
        assert (port["name"], port["port"], port["targetPort"], port["protocol"]) == ("agi", 4573, "agi", "TCP")
    assert one("Service", "synthflow-fastagi")["spec"]["type"] == "ClusterIP"
    # Headless: cluster DNS then publishes _agi._tcp.<service> SRV records, one per ready pod.
    assert one("Service", "synthflow-fastagi-srv")["spec"]["clusterIP"] == "None"


def test_probes_and_scrape_ask_the_port_the_metrics_server_listens_on():
    """Readiness asks /healthz and liveness /metrics on --metrics-listen's port, which listens beyond the pod's loopback, as does the scrape annotation; the NetworkPolicy admits it."""
    args = container()["args"]
    metrics_port = listen_port(args, "--metrics-listen")
    assert option(args, "--metrics-listen").startswith("0.0.0.0:")  # the kubelet asks the pod's IP
    readiness, liveness = container()["readinessProbe"]["httpGet"], container()["livenessProbe"]["httpGet"]
    assert (readiness["path"], port_number(readiness["port"])) == ("/healthz", metrics_port)
    assert (liveness["path"], port_number(liveness["port"])) == ("/metrics", metrics_port)
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(metrics_port), "/metrics")
    admitted = sorted(port["port"] for rule in one("NetworkPolicy")["spec"]["ingress"] for port in rule["ports"])
    assert admitted == sorted([listen_port(args, "--listen"), metrics_port])


@pytest.mark.parametrize("mode, readiness_code", [("dial", 200), ("bogus", 503)])
def test_the_server_answers_the_probes_as_intended(tmp_path, mode, readiness_code):
    """The Deployment's args (on loopback) with the ConfigMap's settings: readiness answers 200, and 503 on a broken mode, while liveness stays 200, so a broken configuration takes the pod out of the Service without a restart loop."""
    args = container()["args"]
    assert args[0] == "fastagi"
    options = []
    for name, value in zip(args[1::2], args[2::2]):
        if name == "--metrics-listen":
            value = "127.0.0.1:%d" % free_port()
        if name != "--listen":  # FastAgiServerProcess listens on a free loopback port
            options += [name, value]
    server = FastAgiServerProcess({"SYNTHFLOW_CONFIG": str(mounted_settings(tmp_path)), "SYNTHFLOW_MODE": mode},
                                  options).start()
    try:
        port = int(option(options, "--metrics-listen").rsplit(":", 1)[1])
        readiness, liveness = container()["readinessProbe"]["httpGet"], container()["livenessProbe"]["httpGet"]
        assert get(port, readiness["path"])[0] == readiness_code, server.log
        assert get(port, liveness["path"])[0] == 200, server.log
    finally:
        assert server.stop() == 0


def test_termination_grace_outlasts_prestop_and_the_servers_grace():
    """Kubernetes waits longer than the preStop pause plus --grace before it kills, so calls in flight drain."""
    spec = one("Deployment")["spec"]["template"]["spec"]
    grace = float(option(container()["args"], "--grace"))
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + grace + 5


def test_memory_covers_the_calls_the_server_accepts():
    """The request covers idle memory plus every call --max-connections admits; the limit leaves twice that."""
    calls = int(option(container()["args"], "--max-connections"))
    needed = (IDLE_BYTES + calls * PER_CALL_BYTES) / MIB
    resources = container()["resources"]
    assert mebibytes(resources["requests"]["memory"]) >= needed
    assert mebibytes(resources["limits"]["memory"]) >= 2 * needed


def test_pod_runs_as_the_images_non_root_user_with_nothing_extra():
    """runAsUser is the Dockerfile's numeric USER, with no privileges, capabilities or writable root."""
    pod = one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.M).groups()
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == user
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container()["securityContext"]
    assert ctx == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                   "capabilities": {"drop": ["ALL"]}}


def test_configmap_and_secret_give_the_server_usable_settings(tmp_path):
    """The ConfigMap's synthflow.conf, read by the real settings loader with the Secret mounted where it says, is usable."""
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    config_map = one("ConfigMap")
    secret = one("Secret")
    assert volumes["settings"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert volumes["token"]["secret"]["secretName"] == secret["metadata"]["name"]
    env = {e["name"]: e["value"] for e in container()["env"]}
    (conf_key,) = config_map["data"]
    assert env["SYNTHFLOW_CONFIG"] == "%s/%s" % (mounts["settings"], conf_key)
    (token_key,) = secret["stringData"]
    token_path = "%s/%s" % (mounts["token"], token_key)
    text = config_map["data"][conf_key]
    assert re.search(r"^api_token_file = %s\s" % re.escape(token_path), text, re.M), text
    base = load_base({"SYNTHFLOW_CONFIG": str(mounted_settings(tmp_path))})
    assert base.error == ""
    assert base.raw["api_token"].strip() == secret["stringData"][token_key]
    assert base.raw["mode"] == "dial"
