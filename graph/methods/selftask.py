"""SelfTask: graph pretext tasks as auxiliary losses (joint) or as pretraining (two-stage).

Jin, Derr, Liu, Wang, Wang, Liu, Tang. "Self-supervised Learning on Graphs: Deep Insights and
New Direction", arXiv 2006.10141, 2020. Reference code: ChandlerBang/SelfTask-GNN.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.graph.finetune import classify, output_layer
from geossl.graph.interop import as_pyg, module_device
from geossl.graph.selftask import PRETEXT_TASKS
from geossl.method import Method
from geossl.registry import METHODS

STRATEGIES = ("joint", "two_stage")


@METHODS.register("selftask", domain="graph")
class SelfTask(Method):
    """The paper's GCN with pretext heads on its first-layer embedding.

    The encoder is the first layer (``h = relu(GCN(x))``, 128 units by default) and a second
    ``GCNConv`` maps ``dropout(h)`` to class scores, so together they are the reference's
    2-layer GCN (its presets, like the reference's models.py, put no dropout on the input
    features). The pretext heads read that same ``dropout(h)`` (one dropout mask for heads and
    classifier), except the context-label tasks, which read ``h`` and apply their own dropout:
    the reference's ``layer=1.5`` and ``layer=1`` (``PretextTask.reads_dropped_embedding``).
    With a GAT encoder (``encoder=gat``: the presets give the first layer of Velickovic et
    al.'s GAT, 8 heads of 8) the second layer is a one-head GAT layer instead
    (``graph.finetune.output_layer``), so the same tasks train a 2-layer GAT.

    * ``strategy="joint"``: ``L = CE(train labels) + lam * sum_t w_t L_t``; the run reports the
      test accuracy of the epoch with the best validation accuracy (its own classifier).
    * ``strategy="two_stage"``: ``L = sum_t w_t L_t`` only; the encoder is then evaluated like
      every other pretrained encoder (linear probe or fine-tuning, ``eval=``).

    Args:
        encoder: the encoder producing ``h`` (``encoder=gcn`` with one layer in the presets).
        in_dim: node feature width (unused beyond the encoder; kept for the common interface).
        data: the graph the task targets are built from (given by the run, not the config).
        num_classes: classes of the node labels (given by the run).
        task: a pretext task name, or several joined by "+" (e.g. ``edge_mask+pairwise_distance``);
            "none" trains the supervised GCN alone (the baseline; joint strategy only). The
            label-informed tasks (distance2labeled, context_label, ensemble_label,
            corrected_label) build their targets from the training labels only.
        weights: one weight per task (default 1 each).
        lam: weight of the pretext losses against the supervised loss in joint training.
        strategy: "joint" or "two_stage".
        dropout: dropout before the classifier layer and the pretext heads that read the dropped
            embedding (in two-stage pretraining too).
        seed: seed of the targets' random choices (given by the run: the run seed).
        options: per-task constructor arguments by task name, e.g.
            ``{"corrected_label": {"samples": 3000}}``; they apply when that task is selected
            (so a dataset preset can hold the reference's per-dataset values). Unknown task
            names and arguments are refused with the valid choices.
    """

    def __init__(self, encoder: Encoder, in_dim: int, data=None, num_classes: int = 0, task: str = "pairwise_distance",
                 weights: Optional[List[float]] = None, lam: float = 1.0, strategy: str = "joint", dropout: float = 0.5,
                 seed: int = 0, options: Optional[Dict[str, Dict[str, Any]]] = None):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ConfigError(f"Unknown strategy {strategy!r}. Valid choices: {', '.join(STRATEGIES)}.")
        if task == "none" and strategy != "joint":
            raise ConfigError("graph.task=none has nothing to pretrain: it is the supervised baseline (graph.strategy=joint).")
        if data is None:
            raise ConfigError("SelfTask builds its targets from a graph: it needs the dataset's graph.")
        data = as_pyg(data)
        names = [] if task == "none" else [t.strip() for t in task.split("+") if t.strip()]
        for name in names:
            PRETEXT_TASKS.get(name)  # unknown names list the valid tasks
        weights = list(weights) if weights else [1.0] * len(names)
        if len(weights) != len(names):
            raise ConfigError(f"graph.weights has {len(weights)} values for {len(names)} tasks ({'+'.join(names)}).")
        self.encoder, self.strategy, self.lam, self.dropout = encoder, strategy, lam, dropout
        self.task_names, self.weights = names, weights
        options = dict(options or {})
        for name, kwargs in options.items():
            _check_task_options(name, kwargs)
        self.tasks = nn.ModuleList(
            self._build_task(n, data, encoder.out_dim, num_classes, seed, options.get(n) or {}) for n in names
        )
        self.classifier = output_layer(encoder, num_classes) if strategy == "joint" else None

    @staticmethod
    def _build_task(name: str, data, embed_dim: int, num_classes: int, seed: int, kwargs: Dict[str, Any]):
        cls = PRETEXT_TASKS.get(name)
        if getattr(cls, "uses_labels", False):  # label-informed: built from the training labels only
            return cls(data, embed_dim, seed=seed, num_classes=num_classes, **kwargs)
        return cls(data, embed_dim, seed=seed, **kwargs)

    @property
    def supervised(self) -> bool:
        """Whether training uses the training labels (joint training)."""
        return self.strategy == "joint"

    def forward(self, data) -> Dict[str, Tensor]:
        """Losses for one step: the weighted pretext losses, and in joint training the
        cross-entropy on the training nodes (``{"loss", "ssl", <task>..., ["ce"]}``). ``data``: the graph the
        method was built on, as a PyG ``Data`` or a ``DGLGraph``."""
        data = as_pyg(data, module_device(self))
        seen = data
        for task in self.tasks:
            seen = task.corrupt(seen)
        h = self.encoder(seen)
        dropped = F.dropout(h, self.dropout, training=self.training)  # one mask for heads and classifier
        losses: Dict[str, Tensor] = {}
        ssl = h.new_zeros(())
        for name, w, task in zip(self.task_names, self.weights, self.tasks):
            value = task.loss(dropped if task.reads_dropped_embedding else h, seen)
            losses[name] = value.detach()
            ssl = ssl + w * value
        losses["ssl"] = ssl.detach()
        if self.supervised:
            logits = classify(self.classifier, dropped, seen)
            ce = F.cross_entropy(logits[data.train_mask], data.y[data.train_mask])
            losses["ce"] = ce.detach()
            losses["loss"] = ce + self.lam * ssl
        else:
            losses["loss"] = ssl
        return losses

    @torch.no_grad()
    def accuracies(self, data) -> Dict[str, float]:
        """Train/validation/test accuracy of the joint model's classifier on the clean graph."""
        data = as_pyg(data, module_device(self))
        was = self.training
        self.eval()
        try:
            pred = classify(self.classifier, self.encoder(data), data).argmax(1)
        finally:
            self.train(was)
        return {f"{split}_acc": float((pred[m] == data.y[m]).float().mean()) for split, m in
                (("train", data.train_mask), ("val", data.val_mask), ("test", data.test_mask))}


#: Constructor arguments every task receives from the run, not from ``graph.options``.
_RUN_TASK_ARGS = ("self", "data", "embed_dim", "seed", "num_classes")


def _check_task_options(name: str, kwargs) -> None:
    """Refuse ``graph.options.<name>`` unless ``name`` is a task and every key is one of its
    constructor arguments."""
    cls = PRETEXT_TASKS.get(name)  # unknown names list the valid tasks
    if not isinstance(kwargs, dict):
        raise ConfigError(f"graph.options.{name} must be a mapping of argument names to values, got {kwargs!r}.")
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in _RUN_TASK_ARGS]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown option(s) {', '.join(unknown)} for task {name!r}. "
                          f"Valid options: {', '.join(valid) if valid else 'none'}.")
