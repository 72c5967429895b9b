"""Linear probe on frozen embeddings, the node-classification protocol of GraphMAE
(Hou et al., KDD 2022) and DGI (Veličković et al., ICLR 2019)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn


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
                 lr: float = 0.01, weight_decay: float = 1e-4, epochs: int = 300, seed: int = 0) -> LinearProbeResult:
    """Train a logistic-regression layer on frozen embeddings and select by validation accuracy.

    Full-batch Adam on the training rows for ``epochs`` epochs; after each epoch the model is
    scored on validation and test; the reported test accuracy is that of the epoch with the
    best validation accuracy. The test split never influences the selection.

    Args:
        embeddings: [N, D] frozen features (detached).
        labels: [N] integer class labels.
        train_mask, val_mask, test_mask: [N] boolean split masks.
        lr: Adam learning rate ("lr_f" in GraphMAE).
        weight_decay: Adam weight decay ("weight_decay_f").
        epochs: training epochs ("max_epoch_f").
        seed: seed of the classifier's initialisation.
    """
    x = embeddings.detach()
    num_classes = int(labels.max()) + 1
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    clf = nn.Linear(x.shape[1], num_classes).to(x.device)
    torch.random.set_rng_state(generator_state)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best_val, best_epoch, best_state = -1.0, -1, None
    test_acc = float("nan")
    for epoch in range(epochs):
        clf.train()
        loss = loss_fn(clf(x[train_mask]), labels[train_mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            logits = clf(x)
            val_acc = _accuracy(logits[val_mask], labels[val_mask])
            test_acc = _accuracy(logits[test_mask], labels[test_mask])
        if val_acc >= best_val:
            best_val, best_epoch, best_state = val_acc, epoch, copy.deepcopy(clf.state_dict())
    clf.load_state_dict(best_state)
    with torch.no_grad():
        best_test = _accuracy(clf(x)[test_mask], labels[test_mask])
    return LinearProbeResult(test_acc=best_test, val_acc=best_val, best_epoch=best_epoch, final_test_acc=test_acc)
