"""cluster/: the launcher YAMLs pass Ray's own schema, the RayJob runs a goal that loads on
pods that fit its trials, the Grafana dashboard plots only (and all) exported metrics, and the
`ray job submit` runtime_env uploads what `agentune submit` uploads."""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # a dependency of Ray; no stubs
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from search.goals import CampaignGoal, load_goal
from search.metrics import EXPORTED_NAMES
from search.submit import UPLOAD_EXCLUDES

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_FILES = ("aws-gpu.yaml", "onprem.yaml")
GPU_GOAL = "cluster/campaigns/gpu.yaml:aami3_gpu"


def _yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CLUSTER / name).read_text())
    return data


def _ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    schema: dict[str, Any] = json.loads(
        (Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text()
    )
    return schema


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_config_passes_rays_schema(name: str) -> None:
    config = _yaml(name)
    # The file as written, against the JSON schema Ray ships (additionalProperties: false)...
    jsonschema.validate(config, _ray_schema())
    # ...and as `ray up` sees it: merged with the provider's defaults, then validated.
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_keeps_the_dashboard_private_and_token_auth_on(name: str) -> None:
    config = _yaml(name)
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    for commands in (head, workers):
        assert "RAY_AUTH_MODE=token" in commands
        assert "--metrics-export-port=8080" in commands
    # every node gets the cluster's token, from the launching machine's ~/.ray/auth_token
    assert any(remote.endswith(".ray/auth_token") for remote in config["file_mounts"])
    # the project is installed from the uploaded copy
    assert "." in config["file_mounts"].values()
    assert any("pip install" in c and "-e" in c for c in config["setup_commands"])


def test_aws_gpu_workers_fit_the_gpu_goal() -> None:
    goal = load_goal(GPU_GOAL, compose=True)
    config = _yaml("aws-gpu.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}  # no trial on the head
    gpu_types = {n: t for n, t in types.items() if t.get("resources", {}).get("GPU", 0) > 0}
    assert gpu_types, "no GPU worker type"
    slots = 0
    for name, node in gpu_types.items():
        per_node = _trials_per_node(goal, node["resources"]["CPU"], node["resources"]["GPU"])
        assert per_node >= 1, f"{name} cannot run one trial of {goal.spec}"
        slots += per_node * node["max_workers"]
    assert slots >= goal.max_concurrent


def _trials_per_node(goal: CampaignGoal, cpus: float, gpus: float) -> int:
    by_cpu = math.floor(cpus / goal.resources.cpu + 1e-9)
    by_gpu = math.floor(gpus / goal.resources.gpu + 1e-9) if goal.resources.gpu else by_cpu
    return min(by_cpu, by_gpu)


def _rayjob() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()))
    jobs = [d for d in docs if d and d.get("kind") == "RayJob"]
    assert len(jobs) == 1
    job: dict[str, Any] = jobs[0]
    assert job["apiVersion"] == "ray.io/v1"
    return job


def _entrypoint_goal(entrypoint: str) -> tuple[str, list[str]]:
    """The goal and the arguments after it in `agentune run GOAL ...` or
    `python -m search run GOAL ...`."""
    argv = shlex.split(entrypoint)
    if argv[:2] == ["agentune", "run"]:
        rest = argv[2:]
    elif argv[:4] == ["python", "-m", "search", "run"]:
        rest = argv[4:]
    else:
        raise AssertionError(f"the entrypoint is not a campaign run: {entrypoint!r}")
    return rest[0], rest[1:]


def _quantity(value: str | int | float) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_rayjob_runs_a_goal_that_loads_on_pods_that_fit_it() -> None:
    job = _rayjob()
    spec = job["spec"]
    goal_spec, args = _entrypoint_goal(spec["entrypoint"])
    goal = load_goal(goal_spec, compose=True)  # exists, validates and composes
    storage = args[args.index("--storage") + 1]
    assert Path(storage).is_absolute()  # the job runs in an unpacked copy of the project
    assert spec["metadata"] == {"goal": goal.spec, "storage": storage}

    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["authOptions"] == {"mode": "token"}
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # trials run on the workers only
    head_pod = head["template"]["spec"]
    assert any(m["mountPath"] in storage for m in head_pod["containers"][0]["volumeMounts"])
    claims = {v["persistentVolumeClaim"]["claimName"] for v in head_pod["volumes"]}
    pvcs = [d for d in yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()) if d]
    assert claims <= {d["metadata"]["name"] for d in pvcs if d["kind"] == "PersistentVolumeClaim"}

    slots = 0
    for group in cluster["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        assert container["image"].startswith(f"rayproject/ray:{ray.__version__}-")
        limits = container["resources"]["limits"]
        cpus = _quantity(limits["cpu"])
        gpus = _quantity(limits.get("nvidia.com/gpu", 0))
        if goal.resources.gpu:
            assert gpus > 0, f"group {group['groupName']} has no GPU for {goal.spec}"
        per_pod = _trials_per_node(goal, cpus, gpus)
        assert per_pod >= 1
        slots += per_pod * group["replicas"]
    assert slots >= goal.max_concurrent, (slots, goal.max_concurrent)


def test_rayjob_runtime_env_is_the_project_and_its_dependencies() -> None:
    runtime_env = yaml.safe_load(_rayjob()["spec"]["runtimeEnvYAML"])
    # KubeRay cannot upload a folder: the project comes as a remote zip archive
    assert re.fullmatch(r"(https|s3|gs)://\S+\.zip", runtime_env["working_dir"])
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [d for d in project["dependencies"] if not d.startswith("ray")]  # in the image
    assert runtime_env["pip"] == wanted
    assert set(runtime_env["env_vars"]) == {"PYTHONUNBUFFERED"}  # secrets come from a Secret


def test_grafana_plots_exactly_the_exported_metrics() -> None:
    dashboard = json.loads((CLUSTER / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    plotted = {name for expr in exprs for name in re.findall(r"\bray_agentune_\w+", expr)}
    assert plotted <= set(EXPORTED_NAMES), plotted - set(EXPORTED_NAMES)
    assert set(EXPORTED_NAMES) <= plotted, set(EXPORTED_NAMES) - plotted
    variables = dashboard["templating"]["list"]
    (campaign_var,) = [v for v in variables if v["name"] == "campaign"]
    used = re.findall(r"\bray_agentune_\w+", campaign_var["definition"])
    assert set(used) <= set(EXPORTED_NAMES)
    assert all('campaign=~"$campaign"' in expr for expr in exprs)


def test_ray_job_submit_runtime_env_uploads_what_agentune_submit_uploads() -> None:
    runtime_env = _yaml("runtime_env.yaml")
    assert runtime_env["working_dir"] == "."
    assert tuple(runtime_env["excludes"]) == UPLOAD_EXCLUDES
    assert runtime_env["env_vars"] == {"PYTHONUNBUFFERED": "1"}
