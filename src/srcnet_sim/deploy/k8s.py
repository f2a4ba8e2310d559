"""Kubernetes manifests for the workflow Job and CronJob, sized from the resource estimate.

`srcnet-sim k8s-manifest` prints job.yaml for the current settings; deploy/k8s/job.yaml is that
output for the seed's defaults (a test keeps the two equal).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import yaml

from srcnet_sim.config import FIELDS, Settings, env_name
from srcnet_sim.sky import download

NAMESPACE = "datalake-ingestion"
IMAGE = "registry.example.org/srcnet/srcnet-sim:0.1.0"  # site placeholder: the image built from ./Dockerfile
INGEST_MOUNT = "/ingest-area"
SCRATCH_MOUNT = "/scratch"  # TMPDIR and the caches of the image point here (see Dockerfile)
SKY_CACHE = f"{SCRATCH_MOUNT}/sky-cache"  # SKY_MODEL_CACHE: a downloaded MIGHTEE_L1 survey, reused by later runs
# Pods with this label may reach the catalogue's web server (deploy/k8s/networkpolicy.yaml); the rest have no network.
SKY_DOWNLOAD_LABEL = {"srcnet.skao.int/egress": "sky-download"}
USER_ID = 10001
GIB = 2**30
MEMORY_HEADROOM = 1.25  # request = estimate x this; limit = request x 1.5
VOLUME_HEADROOM = 1.5


def _gib(n_bytes: float) -> str:
    """Bytes as a Kubernetes quantity in whole Gi, at least 1Gi."""
    return f"{max(1, math.ceil(n_bytes / GIB))}Gi"


def sizing(run_plan: Any) -> dict[str, str]:
    """Requests, limits and PVC sizes for a run plan (run.plan.Plan)."""
    e = run_plan.estimate
    memory = e.peak_memory_bytes * MEMORY_HEADROOM
    staged = sum(run_plan.product_bytes(p) for p in run_plan.products)
    made = run_plan.scratch_bytes()
    s = run_plan.settings
    made += download.cached_bytes(s.sky_model, s.sky_model_path, s.sky_model_cache, s.mightee_l1_url)
    return {
        "cpu_request": "2",
        "cpu_limit": "2",
        "memory_request": _gib(memory),
        "memory_limit": _gib(memory * 1.5),
        # Scratch holds everything made (the MS while it is tarred into staging, the images, a cube's reordered
        # visibilities) and caches
        # (the downloaded sky catalogue of SKY_MODEL=MIGHTEE_L1 included).
        "scratch_pvc": _gib(made * VOLUME_HEADROOM + GIB),
        # The ingest area holds the staged products until the ingestor has uploaded them.
        "ingest_pvc": _gib(staged * VOLUME_HEADROOM),
    }


def security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": USER_ID, "runAsGroup": USER_ID, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


JOB_NAME_FIELD = "metadata.labels['job-name']"  # set by the Job controller on every pod of a Job


def _env(settings: Settings, obs_id_field: str = JOB_NAME_FIELD) -> list[dict]:
    """Every setting as an env var. OBS_ID, unless set, is the Job's name (the job-name label of its pods: unique per
    run of a CronJob, the same for the Job's next pod, which resumes the run), and FILE_PREFIX, unless set, is
    "$(OBS_ID)_" (Kubernetes expands it), so that runs never collide in staging."""
    values = settings.model_dump()
    values["out_dir"] = f"{INGEST_MOUNT}/staging"
    values["sky_model_cache"] = settings.sky_model_cache or SKY_CACHE  # shared by the runs of a CronJob
    env = []
    for field in FIELDS:
        if field == "obs_id" and "obs_id" not in settings.model_fields_set:
            env.append({"name": "OBS_ID", "valueFrom": {"fieldRef": {"fieldPath": obs_id_field}}})
        elif field == "file_prefix" and not settings.file_prefix:
            env.append({"name": "FILE_PREFIX", "value": "$(OBS_ID)_"})
        else:
            env.append({"name": env_name(field), "value": "None" if values[field] is None else str(values[field])})
    return env


def pod_spec(settings: Settings, sizes: dict[str, str], args: list[str]) -> dict:
    labels = {"app.kubernetes.io/name": "srcnet-sim", "app.kubernetes.io/component": "workflow"}
    if download.uses_download(settings.sky_model, settings.sky_model_path):
        labels |= SKY_DOWNLOAD_LABEL
    return {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID, "fsGroup": USER_ID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            # Site placeholders: where simulations may run.
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "srcnet.skao.int/workload", "operator": "In", "values": ["simulation"]}]}]}}},
            "tolerations": [{"key": "srcnet.skao.int/dedicated", "operator": "Equal", "value": "simulation",
                             "effect": "NoSchedule"}],
            "containers": [{
                "name": "srcnet-sim",
                "image": IMAGE,
                "imagePullPolicy": "Always",
                "args": args,
                "env": _env(settings),
                "resources": {
                    "requests": {"cpu": sizes["cpu_request"], "memory": sizes["memory_request"], "ephemeral-storage": "256Mi"},
                    "limits": {"cpu": sizes["cpu_limit"], "memory": sizes["memory_limit"], "ephemeral-storage": "1Gi"},
                },
                "securityContext": security_context(),
                "volumeMounts": [{"name": "ingest-area", "mountPath": INGEST_MOUNT},
                                 {"name": "temporal-scratch", "mountPath": SCRATCH_MOUNT}],
                "livenessProbe": {"exec": {"command": ["srcnet-sim", "--version"]}, "periodSeconds": 300,
                                  "timeoutSeconds": 60},
                "readinessProbe": {"exec": {"command": ["srcnet-sim", "--version"]}, "periodSeconds": 300,
                                   "timeoutSeconds": 60},
            }],
            "volumes": [{"name": "ingest-area", "persistentVolumeClaim": {"claimName": "ingest-area"}},
                        {"name": "temporal-scratch", "persistentVolumeClaim": {"claimName": "temporal-scratch"}}],
        },
    }


def job(settings: Settings, sizes: dict[str, str], args: list[str]) -> dict:
    """The workflow Job (backoffLimit 0: a failed simulation is looked at, not retried blindly; a pod ended by a
    disruption - eviction, preemption, node drain - is not counted: the Job's next pod resumes the run from the
    scratch PVC, see resume.py)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "srcnet-sim-aastar", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "srcnet-sim"}},
        "spec": {"backoffLimit": 0, "podFailurePolicy": POD_FAILURE_POLICY, "ttlSecondsAfterFinished": 604800,
                 "template": pod_spec(settings, sizes, args)},
    }


POD_FAILURE_POLICY = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}


def cronjob(settings: Settings, sizes: dict[str, str], args: list[str], schedule: str = "0 * * * *") -> dict:
    """The same workflow on a schedule (hourly by default); one run at a time."""
    spec = job(settings, sizes, args)["spec"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "srcnet-sim-aastar-hourly", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "srcnet-sim"}},
        "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
                 "failedJobsHistoryLimit": 3, "jobTemplate": {"spec": spec}},
    }


IMAGE_GPU = "registry.example.org/srcnet/srcnet-sim-gpu:0.1.0"  # site placeholder: deploy/docker/Dockerfile.gpu
GPU_RESOURCE = "nvidia.com/gpu"  # the NVIDIA device plugin's resource


def with_gpu(document: dict) -> dict:
    """The Job or CronJob on one NVIDIA GPU: the GPU image, BACKEND=gpu, `nvidia.com/gpu: 1`, and a node
    selector and toleration for GPU nodes (placeholders: the labels and taints of the site's GPU nodes)."""
    template = document["spec"]["jobTemplate"]["spec"] if document["kind"] == "CronJob" else document["spec"]
    pod = template["template"]["spec"]
    document["metadata"]["name"] += "-gpu"
    pod["nodeSelector"] = {"nvidia.com/gpu.present": "true"}  # set by NVIDIA GPU feature discovery
    pod["tolerations"].append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    container = pod["containers"][0]
    container["image"] = IMAGE_GPU
    container["resources"]["limits"][GPU_RESOURCE] = 1
    container["env"] = [{"name": "BACKEND", "value": "gpu"} if e["name"] == "BACKEND" else e for e in container["env"]]
    return document


def render(document: dict, sizes: dict[str, str], settings: Settings) -> str:
    header = (f"# Rendered by `srcnet-sim k8s-manifest` for OBS_LENGTH_HOURS={settings.obs_length_hours}, "
              f"NUM_TIME_STAMPS={settings.num_time_stamps}, IMAGING_NPIXEL={settings.imaging_npixel}.\n"
              f"# Needs PVCs: temporal-scratch >= {sizes['scratch_pvc']}, ingest-area >= {sizes['ingest_pvc']}.\n")
    if document["kind"] == "DaskJob":
        header += ("# Needs the Dask Kubernetes operator (README: Kubernetes with Dask) and deploy/k8s/dask-networkpolicy.yaml.\n"
                   f"# Dashboard: kubectl port-forward -n {NAMESPACE} svc/{DASK_JOB_NAME}-scheduler {DASK_DASHBOARD_PORT}, "
                   f"then http://localhost:{DASK_DASHBOARD_PORT}\n")
    return header + yaml.safe_dump(document, sort_keys=False, width=120)


# ---- DaskJob (Dask Kubernetes operator, kubernetes.dask.org/v1): the same run, its blocks computed on Dask workers ----
DASK_JOB_NAME = "srcnet-sim-aastar-dask"  # the operator names the cluster after it: <name>-scheduler, <name>-runner
DASK_SCHEDULER_PORT = 8786
DASK_DASHBOARD_PORT = 8787
DASK_WORKER_DASHBOARD_PORT = 8788
# Pods with this label may talk to each other (deploy/k8s/dask-networkpolicy.yaml); other srcnet-sim pods have no network.
DASK_LABEL = {"srcnet.skao.int/dask": "cluster"}
DASK_MAX_WORKERS = 4096
DASK_WORKER_MEMORY_BYTES = 4 * GIB  # a worker's MEMORY_LIMIT (its block budget) unless the settings give one
DASK_WORKER_THREADS = 2  # WORKER_THREADS unless the settings give one
DASK_MEMORY_HEADROOM = 1.25  # container memory over Dask's --memory-limit: Dask pauses and spills before the kernel kills
DASK_SCHEDULER_SIZES = {"cpu": "1", "memory": "2Gi"}


def dask_scheduler_address(name: str = DASK_JOB_NAME) -> str:
    """The scheduler Service the operator makes for a DaskJob named `name` (same namespace)."""
    return f"tcp://{name}-scheduler:{DASK_SCHEDULER_PORT}"


def _quantity_bytes(n_bytes: int) -> str:
    """A byte count as MEMORY_LIMIT reads it: whole GiB as e.g. 4GiB, otherwise bytes."""
    return f"{n_bytes // GIB}GiB" if n_bytes % GIB == 0 else str(n_bytes)


def dask_worker_sizing(settings: Settings, workers: int) -> dict[str, Any]:
    """Workers, threads and memory of each: MEMORY_LIMIT and WORKER_THREADS when set, else the defaults above."""
    memory = getattr(settings, "memory_limit", None) or DASK_WORKER_MEMORY_BYTES
    threads = getattr(settings, "worker_threads", None) or DASK_WORKER_THREADS
    return {"workers": workers, "threads": threads, "memory_limit_bytes": int(memory),
            "container_memory": _gib(memory * DASK_MEMORY_HEADROOM), "scratch": _gib(memory)}


def _with_values(env: list[dict], values: dict[str, str]) -> list[dict]:
    """`env` with each of `values` set: in place where the name is there already, appended otherwise."""
    out = [{"name": e["name"], "value": values[e["name"]]} if e["name"] in values else e for e in env]
    present = {e["name"] for e in env}
    return out + [{"name": k, "value": v} for k, v in values.items() if k not in present]


def dask_settings(workers: dict[str, Any]) -> dict[str, str]:
    """The Dask executor's settings: EXECUTOR=dask with the operator's scheduler and the workers' size."""
    return {"EXECUTOR": "dask", "DASK_SCHEDULER_ADDRESS": dask_scheduler_address(), "DASK_WORKERS": str(workers["workers"]),
            "MEMORY_LIMIT": _quantity_bytes(workers["memory_limit_bytes"]), "WORKER_THREADS": str(workers["threads"])}


def _dask_pod(base: dict, container: dict, scratch_limit: str, component: str) -> dict:
    """A scheduler or worker pod: the Job pod's placement and security, `container`, an emptyDir at the scratch mount
    (HOME and TMPDIR of the image: the root filesystem is read-only). No restartPolicy: the operator makes Deployments."""
    spec = {k: copy.deepcopy(v) for k, v in base["spec"].items() if k not in ("restartPolicy", "containers", "volumes")}
    container["volumeMounts"] = [{"name": "dask-scratch", "mountPath": SCRATCH_MOUNT}]
    spec["containers"] = [container]
    spec["volumes"] = [{"name": "dask-scratch", "emptyDir": {"sizeLimit": scratch_limit}}]
    labels = {"app.kubernetes.io/name": "srcnet-sim", "app.kubernetes.io/component": component} | DASK_LABEL
    return {"metadata": {"labels": labels}, "spec": spec}


def _dask_container(name: str, args: list[str], env: list[dict], cpu: str, memory: str, storage: str, port: dict) -> dict:
    def health() -> dict:
        return {"httpGet": {"path": "/health", "port": port["name"]}}

    return {
        "name": name, "image": IMAGE, "imagePullPolicy": "Always",
        "command": ["dask"],  # the image's entrypoint is srcnet-sim; dask (distributed) is installed beside it
        "args": args, "env": copy.deepcopy(env), "ports": [port],
        "resources": {"requests": {"cpu": cpu, "memory": memory, "ephemeral-storage": "256Mi"},
                      "limits": {"cpu": cpu, "memory": memory, "ephemeral-storage": storage}},
        "securityContext": security_context(),
        "readinessProbe": health() | {"initialDelaySeconds": 5, "periodSeconds": 10},
        "livenessProbe": health() | {"initialDelaySeconds": 15, "periodSeconds": 20},
    }


def dask_job(settings: Settings, sizes: dict[str, str], args: list[str], workers: dict[str, Any]) -> dict:
    """A DaskJob: the runner pod is the Job's pod (same env, volumes, security, sizing) running `srcnet-sim run` with
    EXECUTOR=dask against the operator's scheduler; `workers["workers"]` Dask workers of the image compute the blocks."""
    runner = pod_spec(settings, sizes, args)
    runner["metadata"]["labels"] |= DASK_LABEL
    # The operator's runner is a bare pod (no job-name label): OBS_ID from its own name.
    runner["spec"]["containers"][0]["env"] = _with_values(_env(settings, "metadata.name"), dask_settings(workers))
    # Workers run the tasks the runner sends (the blocks carry their inputs): they need no run settings of their own.
    worker_env = [{"name": k, "value": v} for k, v in dask_settings(workers).items()]
    scratch = workers["scratch"]  # a worker spills to its emptyDir, at most about its memory
    storage = _gib((int(scratch[:-2]) + 1) * GIB)
    worker = _dask_pod(runner, _dask_container(
        "worker", ["worker", "$(DASK_SCHEDULER_ADDRESS)", "--name", "$(DASK_WORKER_NAME)", "--nworkers", "1",
                   "--nthreads", str(workers["threads"]), "--memory-limit", str(workers["memory_limit_bytes"]),
                   "--local-directory", f"{SCRATCH_MOUNT}/dask", "--dashboard-address", f":{DASK_WORKER_DASHBOARD_PORT}"],
        worker_env, str(workers["threads"]), workers["container_memory"], storage,
        {"name": "http-dashboard", "containerPort": DASK_WORKER_DASHBOARD_PORT, "protocol": "TCP"}), scratch, "dask-worker")
    scheduler = _dask_pod(runner, _dask_container(
        "scheduler", ["scheduler", "--port", str(DASK_SCHEDULER_PORT), "--dashboard-address", f":{DASK_DASHBOARD_PORT}"],
        [], DASK_SCHEDULER_SIZES["cpu"], DASK_SCHEDULER_SIZES["memory"], "1Gi",
        {"name": "http-dashboard", "containerPort": DASK_DASHBOARD_PORT, "protocol": "TCP"}), "512Mi", "dask-scheduler")
    scheduler["spec"]["containers"][0]["ports"].insert(0, {"name": "tcp-comm", "containerPort": DASK_SCHEDULER_PORT,
                                                            "protocol": "TCP"})
    scheduler["service"] = {
        "type": "ClusterIP",
        "selector": {"dask.org/cluster-name": DASK_JOB_NAME, "dask.org/component": "scheduler"},
        "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": DASK_SCHEDULER_PORT, "targetPort": "tcp-comm"},
                  {"name": "http-dashboard", "protocol": "TCP", "port": DASK_DASHBOARD_PORT, "targetPort": "http-dashboard"}],
    }
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": {"name": DASK_JOB_NAME, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "srcnet-sim"}},
        "spec": {
            "job": runner,
            "cluster": {"spec": {"worker": {"replicas": workers["workers"], **worker}, "scheduler": scheduler}},
        },
    }
