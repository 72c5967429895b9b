"""Graph quantities the SelfTask pretext tasks regress or classify, computed once per run.

Every function states what it computes; none builds an all-pairs matrix: shortest paths come
from breadth-first searches started at a bounded set of sources (scipy's ``csgraph``), and
feature similarities are taken chunk by chunk.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def adjacency(edge_index: Tensor, num_nodes: int):
    """The symmetric, loop-free 0/1 adjacency as a scipy CSR matrix."""
    import scipy.sparse as sp

    ei = edge_index.cpu().numpy()
    keep = ei[0] != ei[1]
    a = sp.coo_matrix((np.ones(int(keep.sum())), (ei[0][keep], ei[1][keep])), shape=(num_nodes, num_nodes)).tocsr()
    a = ((a + a.T) > 0).astype(np.float32)
    return a


def hop_distances(adj, sources: np.ndarray, limit: float = np.inf) -> np.ndarray:
    """Shortest-path hop counts from each of ``sources`` to every node: ``[len(sources), N]``,
    ``inf`` where unreachable or farther than ``limit`` (breadth-first, one row per source)."""
    from scipy.sparse.csgraph import dijkstra

    return dijkstra(adj, directed=False, indices=sources, unweighted=True, limit=limit)


def inverse_hops(dist: np.ndarray) -> np.ndarray:
    """``1 / hop distance``, with 0 where unreachable (``inf``) and at distance 0 (the source
    itself): the reference SelfTask code's transform, whose breadth-first search never scores
    its start node. Values lie in [0, 1]."""
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(dist) & (dist > 0), 1.0 / dist, 0.0)


def degree_classes(adj, thresholds: Sequence[float] = (2, 7)) -> Tensor:
    """Node degree as a class: the number of ``thresholds`` it exceeds. The default gives the
    reference's classes (ChandlerBang/SelfTask-GNN, ``ssl_utils.split_multiclass``): degree
    <= 2 -> 0, 3-7 -> 1, > 7 -> 2."""
    deg = np.asarray(adj.sum(1)).ravel()
    return torch.from_numpy(np.searchsorted(np.sort(np.asarray(thresholds, dtype=float)), deg, side="left")).long()


def metis_clusters(adj, parts: int, seed: int = 0) -> Tensor:
    """A METIS partition (pymetis) of the graph into ``parts`` clusters: ``[N]`` cluster ids."""
    import pymetis

    opts = pymetis.Options(seed=seed)
    csr = pymetis.CSRAdjacency(adj.indptr.astype(np.int64), adj.indices.astype(np.int64))
    _, membership = pymetis.part_graph(parts, adjacency=csr, options=opts)
    return torch.as_tensor(np.asarray(membership), dtype=torch.long)


def cluster_centres(adj, clusters: Tensor) -> np.ndarray:
    """Per cluster, its highest-degree node (ties: the lowest id)."""
    deg = np.asarray(adj.sum(1)).ravel()
    c = clusters.numpy()
    return np.array([int(np.flatnonzero(c == k)[np.argmax(deg[c == k])]) for k in np.unique(c)])


def pca_features(x: Tensor, dims: int, seed: int = 0) -> Tensor:
    """The first ``dims`` principal components of the node features (scikit-learn PCA)."""
    from sklearn.decomposition import PCA

    dims = min(dims, x.shape[0], x.shape[1])
    pca = PCA(n_components=dims, svd_solver="randomized", random_state=seed)
    return torch.from_numpy(pca.fit_transform(x.cpu().numpy())).float()


def similarity_partners(x: Tensor, k: int, chunk: int = 2048) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per node, its ``k`` most and ``k`` least cosine-similar other nodes, with the similarities.

    Returns ``(top_idx [N,k], top_sim [N,k], bottom_idx [N,k], bottom_sim [N,k])``, computed
    ``chunk`` rows at a time so memory stays ``chunk x N``.
    """
    z = torch.nn.functional.normalize(x.float(), dim=1)
    n = z.shape[0]
    out = [[], [], [], []]
    for s in range(0, n, chunk):
        sim = z[s:s + chunk] @ z.t()
        rows = torch.arange(s, min(s + chunk, n))
        sim[rows - s, rows] = float("nan")
        hi = torch.nan_to_num(sim, nan=-2.0).topk(k, dim=1)
        lo = torch.nan_to_num(sim, nan=2.0).topk(k, dim=1, largest=False)
        for lst, t in zip(out, (hi.indices, hi.values, lo.indices, lo.values)):
            lst.append(t)
    return tuple(torch.cat(t) for t in out)  # type: ignore[return-value]
