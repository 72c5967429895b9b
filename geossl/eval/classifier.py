"""The one training loop of geossl's small supervised evaluations: the node linear probe
(:mod:`geossl.eval.linear_probe`), the segmentation probe (:mod:`geossl.eval.seg_probe`) and graph
fine-tuning (:mod:`geossl.graph.finetune`). Full-batch Adam for a fixed number of epochs; after every epoch
the validation score is measured, and the weights of the epoch with the best validation score (ties: the later
epoch) are restored at the end, so the caller scores the test split with them. The test split never
influences the selection.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor, nn


@dataclass
class Selection:
    """What :func:`train_and_select` found.

    Attributes:
        val_score: the best validation score. best_epoch: its epoch (0-based).
        final_test: the test score after the last epoch (``test``'s value then; NaN without ``test``).
    """

    val_score: float
    best_epoch: int
    final_test: float


def train_and_select(modules: Sequence[nn.Module], loss: Callable[[], Tensor], validate: Callable[[], float], lr: float,
                     weight_decay: float, epochs: int, test: Optional[Callable[[], float]] = None) -> Selection:
    """Train ``modules`` (their parameters, in order, under one Adam) and keep the best validation epoch's weights.

    Args:
        modules: what is trained; put in train mode for each step and in eval mode for each validation.
        loss: the training loss of one full-batch step (called in train mode).
        validate: the validation score (higher is better; called in eval mode without gradients).
        lr, weight_decay: Adam's.
        epochs: full-batch steps.
        test: the test score, measured once after the last epoch (``final_test``), before the best weights are
            restored.

    On return the modules hold the weights of the selected epoch, in eval mode.
    """
    params: List[nn.Parameter] = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    best, best_epoch, best_states = -1.0, -1, None
    for epoch in range(epochs):
        for m in modules:
            m.train()
        step_loss = loss()
        opt.zero_grad()
        step_loss.backward()
        opt.step()
        for m in modules:
            m.eval()
        with torch.no_grad():
            score = validate()
        if score >= best or best_states is None:  # a NaN score is never better, but the first epoch is kept
            best, best_epoch, best_states = score, epoch, [copy.deepcopy(m.state_dict()) for m in modules]
    final_test = float("nan")
    if test is not None:
        with torch.no_grad():
            final_test = test()
    for m, state in zip(modules, best_states or []):
        m.load_state_dict(state)
        m.eval()
    return Selection(val_score=best, best_epoch=best_epoch, final_test=final_test)
