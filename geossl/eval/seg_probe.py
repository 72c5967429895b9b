"""Linear probe for semantic segmentation on frozen per-point features: the cheap, detector-free
signal of whether a scene encoder learned anything (a linear classifier per point, scored by mIoU).

The protocol mirrors the node-classification probe (:mod:`geossl.eval.linear_probe`): features are
standardised with the training points' mean and deviation, a linear layer is trained full-batch
with Adam on the training points, and the epoch with the best validation mIoU gives the reported
test mIoU and overall accuracy. The test split never influences the selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor, nn

from geossl.errors import GeosslError
from geossl.eval.classifier import train_and_select


@dataclass
class SegProbeResult:
    """Scores of the probe at its best-validation epoch.

    Attributes:
        miou: test mean intersection-over-union over the classes present in the test labels or predictions.
        oa: test overall accuracy (labelled points).
        class_iou: test IoU per class (NaN for a class neither present nor predicted).
        val_miou: the selected epoch's validation mIoU.
        best_epoch: the selected epoch.
    """

    miou: float
    oa: float
    class_iou: List[float]
    val_miou: float
    best_epoch: int


def confusion(pred: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``[C, C]`` counts (true class x predicted class) over the points whose label is not -1."""
    keep = labels >= 0
    return torch.bincount(labels[keep] * num_classes + pred[keep], minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_scores(conf: Tensor) -> tuple[float, float, List[float]]:
    """``(mIoU, overall accuracy, per-class IoU)`` of a confusion matrix; classes with an empty union are NaN
    and left out of the mean."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    valid = ~torch.isnan(iou)
    miou = float(iou[valid].mean()) if valid.any() else float("nan")
    return miou, float(tp.sum() / conf.sum().clamp_min(1)), iou.tolist()


def seg_probe(train_x: Tensor, train_y: Tensor, val_x: Tensor, val_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int,
              lr: float = 0.01, weight_decay: float = 1e-4, epochs: int = 200, seed: int = 0) -> SegProbeResult:
    """Train a per-point linear classifier on frozen features and score it by mIoU.

    Args:
        train_x, val_x, test_x: ``[N, D]`` per-point features of the training, validation and test points.
        train_y, val_y, test_y: ``[N]`` class ids (-1: not labelled, ignored).
        num_classes: number of classes.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        epochs: full-batch training epochs.
        seed: seed of the classifier's initialisation.
    """
    if int((train_y >= 0).sum()) == 0:
        raise GeosslError("The segmentation probe's training points carry no labels (all -1): the dataset has no semantic labels.")
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    norm = lambda x: (x - mean) / std  # noqa: E731
    tx, vx, sx = norm(train_x), norm(val_x), norm(test_x)
    keep = train_y >= 0
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    clf = nn.Linear(tx.shape[1], num_classes)
    torch.random.set_rng_state(state)
    loss_fn = nn.CrossEntropyLoss()
    chosen = train_and_select([clf], lambda: loss_fn(clf(tx[keep]), train_y[keep]),
                              lambda: iou_scores(confusion(clf(vx).argmax(1), val_y, num_classes))[0], lr, weight_decay, epochs)
    with torch.no_grad():
        miou, oa, per_class = iou_scores(confusion(clf(sx).argmax(1), test_y, num_classes))
    return SegProbeResult(miou=miou, oa=oa, class_iou=per_class, val_miou=chosen.val_score, best_epoch=chosen.best_epoch)
