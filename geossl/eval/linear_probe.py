"""Linear probe on frozen embeddings, the node-classification protocol of GraphMAE
(Hou et al., KDD 2022) and DGI (Veličković et al., ICLR 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geossl.eval.classifier import train_and_select


@dataclass
class LinearProbeResult:
    """Accuracies of the probe at its best-validation epoch.

    Attributes:
        test_acc: test accuracy of the epoch with the best validation accuracy (ties: later epoch).
        val_acc: that best validation accuracy.
        best_epoch: the selected epoch.
        final_test_acc: test accuracy after the last epoch (reported by the reference code too).
    """

    test_acc: float
    val_acc: float
    best_epoch: int
    final_test_acc: float


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean()) if labels.numel() else float("nan")


def linear_probe(embeddings: Tensor, labels: Tensor, train_mask: Tensor, val_mask: Tensor, test_mask: Tensor,
                 lr: float = 0.01, weight_decay: float = 1e-4, epochs: int = 300, seed: int = 0,
                 normalize: bool = False) -> LinearProbeResult:
    """Train a logistic-regression layer on frozen embeddings and select by validation accuracy.

    Full-batch Adam on the training rows for ``epochs`` epochs (:func:`~geossl.eval.classifier.train_and_select`);
    after each epoch the model is scored on validation; the reported test accuracy is that of the epoch
    with the best validation accuracy. The test split never influences the selection.

    Args:
        embeddings: [N, D] frozen features (detached).
        labels: [N] integer class labels.
        train_mask, val_mask, test_mask: [N] boolean split masks.
        lr: Adam learning rate ("lr_f" in GraphMAE).
        weight_decay: Adam weight decay ("weight_decay_f").
        epochs: training epochs ("max_epoch_f").
        seed: seed of the classifier's initialisation.
        normalize: scale every embedding to unit length first (Graph Barlow Twins' protocol, as DGI's and GRACE's
            logistic regressions; GraphMAE's probe reads the embeddings as they are).
    """
    x = embeddings.detach()
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
    num_classes = int(labels.max()) + 1
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    clf = nn.Linear(x.shape[1], num_classes).to(x.device)
    torch.random.set_rng_state(generator_state)
    loss_fn = nn.CrossEntropyLoss()
    chosen = train_and_select([clf], lambda: loss_fn(clf(x[train_mask]), labels[train_mask]),
                              lambda: _accuracy(clf(x)[val_mask], labels[val_mask]), lr, weight_decay, epochs,
                              test=lambda: _accuracy(clf(x)[test_mask], labels[test_mask]))
    with torch.no_grad():
        best_test = _accuracy(clf(x)[test_mask], labels[test_mask])
    return LinearProbeResult(test_acc=best_test, val_acc=chosen.val_score, best_epoch=chosen.best_epoch,
                             final_test_acc=chosen.final_test)
