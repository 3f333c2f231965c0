"""The lab deployment's files validate, and the image installs neurofit with CI's own script."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_pinned_and_runs_as_a_user():
    rows = _dockerfile()
    froms = [args for word, args in rows if word == "FROM"]
    assert len(froms) >= 2  # build stage and runtime stage
    base = next(args for word, args in rows if word == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", base), base  # an exact release
    users = [args for word, args in rows if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(word == "ARG" and args.startswith("VARIANT=") for word, args in rows)


def test_image_install_is_the_ci_install_script():
    runs = [args for word, args in _dockerfile() if word == "RUN"]
    installs = [args for args in runs if "install.sh" in args]
    assert len(installs) == 1 and "sh deploy/install.sh" in installs[0]
    assert not any("pip" in args for args in runs), "every pip install belongs in deploy/install.sh"
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "sh deploy/install.sh" in recipe and "pip" not in recipe
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI installs through make
    script = (ROOT / "deploy" / "install.sh").read_text()
    assert "torch==$TORCH_VERSION" in script and "TORCH_VERSION=2.13.0" in script


def test_compose_file_validates_and_is_locked_down():
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    for name in ("worker", "notebook"):
        service = services[name]
        assert service["image"].startswith("${NEUROFIT_IMAGE"), name
        assert "pip" not in str(service.get("command", "")) + str(service.get("entrypoint", ""))
        user = service["environment"]["DJ_USER"]
        assert "root" not in user.lower() and user.startswith("${NEUROFIT_"), user
    # Secrets have no defaults in the file: a missing one is an error, not a known password.
    for match in re.finditer(r"\$\{(\w*(PASSWORD|SECRET|TOKEN|PASS)\w*)(:?[-?])?([^}]*)\}", text):
        assert match.group(3) in (":?", None) or not match.group(4), match.group(0)
    assert "neurofit-secret" not in text and "MYSQL_ROOT_PASSWORD:-" not in text


def test_every_compose_variable_is_in_the_env_example():
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    example = (ROOT / "deploy" / "env.example").read_text()
    defined = set(re.findall(r"^(\w+)=", example, flags=re.M))
    assert used - defined == set(), f"add to deploy/env.example: {sorted(used - defined)}"
    ignored = (ROOT / "deploy" / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_kubernetes_manifest_validates_and_runs_indexed_workers():
    manifest = ROOT / "deploy" / "kubernetes" / "workers.yaml"
    result = subprocess.run([_tool("kubernetes-validate"), "--strict", str(manifest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    documents = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    job = next(doc for doc in documents if doc["kind"] == "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] >= 1
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["terminationGracePeriodSeconds"] >= 60
    container = pod["containers"][0]
    assert container["args"][0] == "worker" and "neurofit" in container["image"]
    assert {"secretRef": {"name": "neurofit-worker"}} in container["envFrom"]
    assert "PASS" not in str(next(doc for doc in documents if doc["kind"] == "ConfigMap")["data"])
