"""The Ray a campaign runs on: joined or started, the libraries quieted, a trial's fit checked.

`search.runner.run_campaign` calls `quiet_libraries` first, then `init_ray`, then
`check_trial_resources` before it builds anything that a trial needs.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from search.goals import CampaignError

if TYPE_CHECKING:
    from search.goals import CampaignGoal

__all__ = ["check_trial_resources", "init_ray", "quiet_libraries"]

logger = logging.getLogger(__name__)


def init_ray(num_cpus: int | None = None) -> bool:
    """Join `RAY_ADDRESS` or start an embedded Ray (node address 127.0.0.1, no dashboard).

    Args:
        num_cpus: CPUs of an embedded Ray (default: all of this machine's); ignored when
            Ray is running already or `RAY_ADDRESS` names a cluster.

    Returns:
        True when this call started Ray (the caller shuts it down), False when it joined one
        (or Ray was initialised already).
    """
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        logger.info("Joining the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=False)
        return False
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def quiet_libraries() -> None:
    """Keep the terminal for the campaign's own lines: Tune's tables and Optuna's study logs
    go to the log files and `--verbose`, not to every run's output."""
    import optuna

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # one checkpoint per epoch is the design (a restored trial resumes from its last epoch)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not logger.isEnabledFor(logging.INFO):
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def check_trial_resources(goal: CampaignGoal, *, embedded: bool) -> None:
    """Refuse a goal whose trials fit on no node of the Ray this campaign runs on.

    Tune would wait forever for such a trial (it only warns). A trial's CPUs and GPUs must
    come from one node. On a cluster the campaign joined, an autoscaler may still add a node
    that fits (the cluster configs here start GPU workers on demand), so that is a warning.

    Raises:
        CampaignError: on an embedded Ray (this machine only) that cannot hold one trial.
    """
    import ray

    cpu, gpu = goal.resources.cpu, goal.resources.gpu
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in nodes):
        return
    have = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes)
    asked = f"each trial asks for {cpu:g} CPU and {gpu:g} GPU (resources:)"
    if not embedded:
        logger.warning(
            "%s: %s, which no node of the cluster has now (%s); waiting for the autoscaler",
            goal.spec, asked, have or "no nodes",
        )  # fmt: skip
        return
    raise CampaignError(
        f"{goal.spec}: {asked}, but the Ray started on this machine has {have or 'nothing'}, "
        "so no trial could start; lower resources.cpu / resources.gpu in the goal (gpu: 0 "
        "trains on CPU), or run it on a cluster that has them (RAY_ADDRESS, or agentune "
        "submit: cluster/README.md)"
    )
