"""Pseudo-labels for SelfTask's label-informed tasks, computed from the training labels only.

Every function takes the training nodes and their labels explicitly (``train_idx``, ``y_train``)
and nothing else about the labels, so no validation or test label can reach a target.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor


def training_labels(data) -> tuple[Tensor, Tensor]:
    """The training nodes and their labels: ``(train_idx [T], y_train [T])``. The only place the
    label-informed tasks read ``data.y``."""
    train_idx = data.train_mask.cpu().nonzero().view(-1)
    return train_idx, data.y.cpu()[train_idx].long()


def _clamp_training(probs: Tensor, train_idx: Tensor, y_train: Tensor) -> Tensor:
    probs = probs.clone()
    probs[train_idx] = F.one_hot(y_train, probs.shape[1]).to(probs.dtype)
    return probs


def label_propagation(edge_index: Tensor, num_nodes: int, train_idx: Tensor, y_train: Tensor, num_classes: int,
                      layers: int = 50, alpha: float = 0.9) -> Tensor:
    """Class probabilities of every node by label propagation from the training labels
    (PyG's ``LabelPropagation``: ``Y <- alpha * D^-1/2 A D^-1/2 Y + (1 - alpha) Y0``, ``layers``
    times), rows normalised to sum to 1; training nodes keep their one-hot label. ``[N, C]``."""
    from torch_geometric.nn import LabelPropagation

    y0 = torch.zeros(num_nodes, num_classes)
    y0[train_idx] = F.one_hot(y_train, num_classes).float()
    keep = edge_index[0] != edge_index[1]
    out = LabelPropagation(layers, alpha)(y0, edge_index.cpu()[:, keep.cpu()])
    out = out / out.sum(1, keepdim=True).clamp_min(1e-12)
    out[out.sum(1) == 0] = 1.0 / num_classes  # nodes no training label reaches: uniform
    return _clamp_training(out, train_idx, y_train)


def _fill_classes(proba: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    full = np.zeros((proba.shape[0], num_classes))
    full[:, classes] = proba
    return full


def iterative_classification(x: Tensor, adj, train_idx: Tensor, y_train: Tensor, num_classes: int,
                             iterations: int = 10, seed: int = 0) -> Tensor:
    """Class probabilities of every node by the iterative classification algorithm (ICA; Lu and
    Getoor, 2003) as the SelfTask reference uses it: a logistic regression on the (binarised)
    features bootstraps labels for the unlabelled nodes; a second logistic regression on the
    features plus the counts of each class among a node's neighbours is fitted on the training
    nodes (neighbour labels = training labels, bootstrap predictions elsewhere), then applied
    ``iterations`` times, each time recounting the neighbours' current labels. Training nodes
    keep their one-hot label. Returns ``[N, C]``."""
    from sklearn.linear_model import LogisticRegression

    tr, ytr = train_idx.numpy(), y_train.numpy()
    feats = sp.csr_matrix((x.cpu().numpy() != 0).astype(np.float64))
    local = LogisticRegression(max_iter=1000, random_state=seed).fit(feats[tr], ytr)
    labels = local.predict(feats)
    labels[tr] = ytr

    def relational_features(current: np.ndarray):
        counts = adj @ np.eye(num_classes)[current]
        return sp.hstack([feats, sp.csr_matrix(counts)]).tocsr()

    relational = LogisticRegression(max_iter=1000, random_state=seed).fit(relational_features(labels)[tr], ytr)
    proba = _fill_classes(local.predict_proba(feats), local.classes_, num_classes)
    for _ in range(iterations):
        proba = _fill_classes(relational.predict_proba(relational_features(labels)), relational.classes_, num_classes)
        new = proba.argmax(1)
        new[tr] = ytr
        if np.array_equal(new, labels):
            break
        labels = new
    return _clamp_training(torch.from_numpy(proba).float(), train_idx, y_train)


def two_hop_pattern(adj):
    """The nodes reachable in one step and those reachable in two (self excluded), as the two 0/1
    CSR matrices ``(A, A2)``; a node that is both appears in both, as in the reference."""
    a = adj.tocsr().astype(np.float32)
    a2 = (a @ a).tocsr()
    a2.setdiag(0)
    a2.eliminate_zeros()
    a2.data[:] = 1.0
    return a, a2


def context_distribution(a, a2, labels: Tensor, num_classes: int) -> Tensor:
    """Per node, the distribution of ``labels`` over its 1-hop and 2-hop neighbourhood
    (counts from ``a`` plus ``a2``, normalised): ``[N, C]``; rows of nodes without neighbours are 0."""
    onehot = np.eye(num_classes, dtype=np.float32)[labels.cpu().numpy()]
    counts = a @ onehot + a2 @ onehot
    total = counts.sum(1, keepdims=True)
    return torch.from_numpy(np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)).float()


def density_prototype_labels(h: Tensor, labels: Tensor, nodes: Tensor, num_classes: int, per_class: int = 320,
                             prototypes: int = 8, percentile: float = 40.0, generator=None) -> Tensor:
    """Corrected labels for ``nodes``: for each class, up to ``per_class`` nodes carrying that
    (pseudo-)label are drawn, their density ``rho_i = sum_j sign(S_ij - S_c)`` is computed from
    the cosine similarities ``S`` of their embeddings (``S_c`` = the ``percentile`` of ``S``), nodes
    whose nearest denser neighbour is almost identical (similarity >= 0.95) lose their density,
    and the ``prototypes`` densest nodes are the class's prototypes. A node's corrected label is
    the class whose prototypes it is most similar to on average (Jin et al., 2020, CorrectedLabel,
    after Han et al., 2019). Returns ``[len(nodes)]``."""
    z = F.normalize(h.detach(), dim=1)
    scores = torch.full((len(nodes), num_classes), -2.0, device=h.device)
    for c in range(num_classes):
        members = (labels == c).nonzero().view(-1)
        if len(members) == 0:
            continue
        members = members[torch.randperm(len(members), generator=generator)[:per_class]].to(h.device)
        s = z[members] @ z[members].t()
        s_c = torch.quantile(s.flatten(), percentile / 100.0)
        rho = torch.sign(s - s_c).sum(1)
        denser = rho[None, :] > rho[:, None]
        eta = torch.where(denser, s, torch.full_like(s, -3.0)).amax(1)
        eta = torch.where(denser.any(1), eta, s.amin(1))
        rho = torch.where(eta >= 0.95, torch.zeros_like(rho), rho)
        proto = members[rho.argsort()[-prototypes:]]
        scores[:, c] = (z[nodes] @ z[proto].t()).mean(1)
    return scores.argmax(1)
