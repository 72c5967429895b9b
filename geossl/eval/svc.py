"""Graph-classification protocol of GraphMAE/InfoGraph: an SVC on frozen graph embeddings.

Hou et al., "GraphMAE", KDD 2022 (Sec. 4.2): pooled graph embeddings are classified by an SVC
whose C is chosen by grid search inside each training fold, under 10-fold stratified
cross-validation; the mean and std of the 10 fold accuracies are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch

#: The reference's grid for C.
DEFAULT_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class SVCResult:
    """Mean and std of the fold accuracies (in %), the folds' accuracies and the C each fold chose."""

    acc: float
    std: float
    fold_accs: List[float]
    chosen_C: List[float]


def svc_cross_validation(embeddings: torch.Tensor, labels: torch.Tensor, folds: int = 10, C: Sequence[float] = DEFAULT_C,
                         fold_seed: int = 0, inner_folds: int = 5) -> SVCResult:
    """Accuracy of an RBF SVC on ``embeddings`` under stratified k-fold cross-validation.

    Args:
        embeddings: ``[G, d]`` graph embeddings (not scaled, as in the reference).
        labels: ``[G]`` integer classes.
        folds: number of outer stratified folds (10 in the paper).
        C: grid of SVC regularisation constants searched inside each training fold.
        fold_seed: seed of the fold shuffle (the reference fixes 0, so seeds vary only the pretraining).
        inner_folds: folds of the grid search inside each training fold (scikit-learn's default 5).
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    x = embeddings.detach().cpu().double().numpy()
    y = labels.detach().cpu().view(-1).numpy()
    if len(x) != len(y):
        raise ValueError(f"{len(x)} embeddings but {len(y)} labels")
    accs, chosen = [], []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=fold_seed).split(x, y):
        search = GridSearchCV(SVC(random_state=42), {"C": list(C)}, cv=inner_folds)
        search.fit(x[train], y[train])
        accs.append(float((search.predict(x[test]) == y[test]).mean() * 100))
        chosen.append(float(search.best_params_["C"]))
    return SVCResult(acc=float(np.mean(accs)), std=float(np.std(accs)), fold_accs=accs, chosen_C=chosen)
