"""SelfTask pretext tasks (Jin et al., 2020)."""

from geossl.graph.selftask.tasks import PRETEXT_TASKS, PretextTask  # noqa: F401
