"""The container set-up under deploy/ matches the real CLIs (Docker does not run here).

The compose file and the Kubernetes manifest are parsed with PyYAML; every command line is
parsed by the program that will run it: `chatload serve` by its own argparse options, the
Locust master and worker lines by Locust's own parser (in a subprocess: locust
monkey-patches the standard library on import, and this test process must stay clean).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
import yaml

from harness.commands import serve
from harness.runner import run_env
from tests.support import ROOT, time_unit

DEPLOY = ROOT / "deploy"
LOCUST_PARSE = """
import json, sys
from locust.argument_parser import parse_options
out = []
for argv in json.loads(sys.argv[1]):
    o = parse_options(argv)
    out.append({k: getattr(o, k) for k in ("locustfile", "master", "worker", "master_host", "master_port",
                "master_bind_host", "master_bind_port", "expect_workers", "host", "headless", "num_users")})
print(json.dumps(out))
"""


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _kube() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()) if d]


def _kind(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _container(doc: dict) -> dict:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return container


def _serve_options(command: list[str]) -> argparse.Namespace:
    assert command[:2] == ["chatload", "serve"], command
    parser = argparse.ArgumentParser(exit_on_error=False)
    serve.add_arguments(parser)
    return parser.parse_args(command[2:])  # an unknown option fails here


def _locust_options(commands: list[list[str]]) -> list[dict]:
    for c in commands:
        assert c[:3] == ["python", "-m", "locust"], c
    out = subprocess.run(
        [sys.executable, "-c", LOCUST_PARSE, json.dumps([c[3:] for c in commands])],
        cwd=ROOT, capture_output=True, text=True, timeout=60 * time_unit(),
    )
    assert out.returncode == 0, out.stderr  # Locust rejected an option
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_env_keys() -> set[str]:
    cfg = SimpleNamespace(scenario_label="s", seed=1, users=1, spawn_rate=1.0, duration_s=1.0, workers=1,
                          protocol="reference", mapping=None, out_dir=Path("out"), params={})
    return set(run_env(cfg, "ws://x/ws", "now"))  # type: ignore[arg-type]


def _check_env(env: dict[str, str], target: str) -> None:
    assert set(env) == _run_env_keys()
    assert env["CHATLOAD_TARGET"] == target
    run = json.loads(env["CHATLOAD_RUN"])
    assert run["target"] == target
    assert isinstance(json.loads(env["CHATLOAD_SCENARIO_PARAMS"]), dict)


def _check_swarm(master: dict, worker: dict, workers: int, master_service: str, server_service: str,
                 server: argparse.Namespace) -> None:
    assert master["master"] and master["headless"] and not master["worker"]
    assert worker["worker"] and not worker["master"]
    assert worker["master_host"] == master_service
    assert worker["master_port"] == master["master_bind_port"]
    assert master["master_bind_host"] == "0.0.0.0"  # reachable from other hosts
    assert master["expect_workers"] == workers
    assert master["locustfile"] == worker["locustfile"] and (ROOT / master["locustfile"]).is_file()
    url = urlparse(master["host"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("ws", server_service, server.port, "/ws")
    assert server.host == "0.0.0.0"


def test_dockerfile_installs_the_project_packages() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    for package in ("reference_server", "harness", "scenarios"):
        assert f"COPY {package} ./{package}" in text and (ROOT / package).is_dir()
    assert "RUN pip install ." in text


def test_compose_services_match_the_real_command_lines() -> None:
    doc = _compose()
    services = doc["services"]
    assert set(services) == {"server", "master", "worker"}
    server = _serve_options(services["server"]["command"])
    master, worker = _locust_options([services["master"]["command"], services["worker"]["command"]])
    _check_swarm(master, worker, services["worker"]["deploy"]["replicas"], "master", "server", server)
    for role in ("master", "worker"):
        _check_env(services[role]["environment"], master["host"])
    assert services["master"]["depends_on"]["server"]["condition"] == "service_healthy"


def test_kubernetes_manifest_matches_the_real_command_lines() -> None:
    docs = _kube()
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d)
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "chatload"
    server_deploy = _kind(docs, "Deployment", "server")
    worker_deploy = _kind(docs, "Deployment", "worker")
    master_job = _kind(docs, "Job", "chatload-master")
    server = _serve_options(_container(server_deploy)["command"])
    master, worker = _locust_options([_container(master_job)["command"], _container(worker_deploy)["command"]])
    _check_swarm(master, worker, worker_deploy["spec"]["replicas"], "master", "server", server)
    # the Services route to the pods that listen
    for service, labels, port in (("server", server_deploy, server.port), ("master", master_job,
                                                                              master["master_bind_port"])):
        svc = _kind(docs, "Service", service)
        assert svc["spec"]["selector"] == labels["spec"]["template"]["metadata"]["labels"]
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == [port]
    for d in (server_deploy, worker_deploy):
        assert d["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"]
    # both swarm roles get the run contract from one ConfigMap
    config = _kind(docs, "ConfigMap", "chatload-run")
    _check_env(config["data"], master["host"])
    for d in (master_job, worker_deploy):
        assert _container(d)["envFrom"] == [{"configMapRef": {"name": "chatload-run"}}]


@pytest.mark.parametrize("name", ["compose.yaml", "kubernetes.yaml"])
def test_the_docs_use_the_files_that_exist(name: str) -> None:
    assert f"deploy/{name}" in (ROOT / "docs" / "distributed.md").read_text()
