"""SelfTask pretext tasks (Jin et al., 2020)."""

from geossl.graph.selftask.tasks import PRETEXT_TASKS, PretextTask  # noqa: F401
from geossl.graph.selftask import label_tasks  # noqa: F401  (registers the label-informed tasks)
