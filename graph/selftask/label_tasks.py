"""SelfTask's label-informed pretext tasks (Jin et al., 2020, "Self-supervised Learning on Graphs:
Deep Insights and New Direction", section 5; reference code ChandlerBang/SelfTask-GNN).

They build targets from the training labels and the graph, never from validation or test labels:
every label they read comes through ``pseudo_labels.training_labels``. Each is given the number
of classes by the method (``num_classes``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.errors import ConfigError
from geossl.graph.selftask import graph_targets as gt
from geossl.graph.selftask import pseudo_labels as pl
from geossl.graph.selftask.tasks import PRETEXT_TASKS, PretextTask

#: Where ContextLabel's pseudo-labels come from.
SOURCES = ("lp", "ica")


class LabelInformedTask(PretextTask):
    """A task whose targets use the training labels (``num_classes`` is given by the method)."""

    uses_labels = True

    def __init__(self, data, embed_dim: int, seed: int = 0, num_classes: int = 0):
        super().__init__(data, embed_dim, seed)
        self.train_idx, self.y_train = pl.training_labels(data)
        if len(self.train_idx) == 0:
            raise ConfigError(f"{type(self).__name__} needs training labels, and the graph has no training node.")
        self.num_classes = max(num_classes, int(self.y_train.max()) + 1)
        unlabeled = torch.ones(self.num_nodes, dtype=torch.bool)
        unlabeled[self.train_idx] = False
        self.register_buffer("unlabeled", unlabeled.nonzero().view(-1))


@PRETEXT_TASKS.register("distance2labeled")
class Distance2Labeled(LabelInformedTask):
    """Regress, for every unlabelled node and every class, the mean over that class's training
    nodes of ``1 / hop distance`` (0 where unreachable) (MSE). One breadth-first search per
    training node."""

    def __init__(self, data, embed_dim: int, seed: int = 0, num_classes: int = 0):
        super().__init__(data, embed_dim, seed, num_classes)
        dist = gt.hop_distances(self.adj, self.train_idx.numpy())  # [T, N]
        inv = gt.inverse_hops(dist)
        target = np.zeros((self.num_nodes, self.num_classes))
        y = self.y_train.numpy()
        for c in range(self.num_classes):
            if (y == c).any():
                target[:, c] = inv[y == c].mean(0)
        self.register_buffer("target", torch.from_numpy(target).float())
        self.head = nn.Linear(embed_dim, self.num_classes)

    def loss(self, h: Tensor, data) -> Tensor:
        return F.mse_loss(self.head(h[self.unlabeled]), self.target[self.unlabeled])


@PRETEXT_TASKS.register("context_label")
class ContextLabel(LabelInformedTask):
    """Regress every unlabelled node's neighbourhood label distribution: the share of each class
    among its 1-hop and 2-hop neighbours, counting training labels where known and pseudo-labels
    elsewhere. The head is dropout, a linear layer and a softmax; the loss is MSE.

    Args:
        source: the pseudo-labels: ``"lp"`` label propagation (PyG's LabelPropagation) or ``"ica"``
            the iterative classification algorithm over features and neighbour labels.
        dropout: dropout on the embeddings before the head (0.5 in the reference).
    """

    reads_dropped_embedding = False  # its head applies its own dropout (the reference's layer=1)

    def __init__(self, data, embed_dim: int, seed: int = 0, num_classes: int = 0, source: str = "lp", dropout: float = 0.5):
        super().__init__(data, embed_dim, seed, num_classes)
        self.dropout = dropout
        probs = self.pseudo_label_probs(data, source, seed)
        self.register_buffer("pseudo", probs.argmax(1))
        self.a, self.a2 = pl.two_hop_pattern(self.adj)
        self.register_buffer("target", pl.context_distribution(self.a, self.a2, self.pseudo, self.num_classes))
        self.head = nn.Linear(embed_dim, self.num_classes)

    def pseudo_label_probs(self, data, source: str, seed: int) -> Tensor:
        """``[N, C]`` class probabilities from ``source``; training nodes one-hot."""
        if source not in SOURCES:
            raise ConfigError(f"Unknown pseudo-label source {source!r}. Valid choices: {', '.join(SOURCES)}.")
        if source == "lp":
            return pl.label_propagation(data.edge_index, self.num_nodes, self.train_idx, self.y_train, self.num_classes)
        return pl.iterative_classification(data.x, self.adj, self.train_idx, self.y_train, self.num_classes, seed=seed)

    def predicted(self, h: Tensor) -> Tensor:
        return torch.softmax(self.head(F.dropout(h, self.dropout, training=self.training)), dim=1)

    def loss(self, h: Tensor, data) -> Tensor:
        return F.mse_loss(self.predicted(h)[self.unlabeled], self.target[self.unlabeled])


@PRETEXT_TASKS.register("ensemble_label")
class EnsembleLabel(ContextLabel):
    """ContextLabel whose pseudo-labels are the argmax of the summed label-propagation and ICA
    probabilities."""

    def __init__(self, data, embed_dim: int, seed: int = 0, num_classes: int = 0, dropout: float = 0.5):
        super().__init__(data, embed_dim, seed, num_classes, source="lp+ica", dropout=dropout)

    def pseudo_label_probs(self, data, source: str, seed: int) -> Tensor:
        return sum(super(EnsembleLabel, self).pseudo_label_probs(data, s, seed) for s in SOURCES)


@PRETEXT_TASKS.register("corrected_label")
class CorrectedLabel(ContextLabel):
    """ContextLabel plus a second target whose pseudo-labels are corrected every step: ``samples``
    unlabelled nodes are relabelled by their similarity to per-class density prototypes of the
    current embeddings (``pseudo_labels.density_prototype_labels``), the neighbourhood
    distributions are recomputed with those labels, and ``alpha`` times their MSE on the sampled
    nodes is added.

    Args:
        samples: unlabelled nodes relabelled per step (1000 for Cora in the reference).
        alpha: weight of the corrected-label loss (1.5 for Cora in the reference).
    """

    def __init__(self, data, embed_dim: int, seed: int = 0, num_classes: int = 0, source: str = "lp",
                 dropout: float = 0.5, samples: int = 1000, alpha: float = 1.5):
        super().__init__(data, embed_dim, seed, num_classes, source=source, dropout=dropout)
        self.samples, self.alpha = samples, alpha

    def loss(self, h: Tensor, data) -> Tensor:
        out = self.predicted(h)
        base = F.mse_loss(out[self.unlabeled], self.target[self.unlabeled])
        pick = self.unlabeled[torch.randperm(len(self.unlabeled), device=self.unlabeled.device)[: self.samples]]
        corrected = self.pseudo.clone()
        corrected[pick] = pl.density_prototype_labels(h, self.pseudo, pick, self.num_classes)
        target = pl.context_distribution(self.a, self.a2, corrected, self.num_classes).to(h.device)
        return base + self.alpha * F.mse_loss(out[pick], target[pick])
