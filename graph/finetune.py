"""Fine-tuning a pretrained node encoder with labels: the second stage of two-stage training."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from geossl.encoder import Encoder
from geossl.eval.classifier import train_and_select
from geossl.graph.encoders import GAT, GATLayer
from geossl.graph.encoders.common import gcn_edge_weight


def output_layer(encoder: Encoder, num_classes: int) -> torch.nn.Module:
    """The layer that maps ``encoder``'s node embeddings to class scores, completing a two-layer
    backbone: after a GAT encoder, a one-head GAT layer with the encoder's attention dropout and
    slope (the output layer of Velickovic et al., 2018, "Graph Attention Networks"); after any
    other encoder, a ``GCNConv`` (Kipf and Welling, 2017). Apply it with :func:`classify`."""
    if isinstance(encoder, GAT):
        first = encoder.layers[0]
        return GATLayer(encoder.out_dim, num_classes, heads=1, attn_drop=first.attn_drop, negative_slope=first.negative_slope)
    return GCNConv(encoder.out_dim, num_classes)


def classify(layer: torch.nn.Module, h: torch.Tensor, data) -> torch.Tensor:
    """Class scores of an :func:`output_layer` for embeddings ``h`` on graph ``data`` (a
    ``GCNConv`` also takes the graph's self-loop weights: ``gcn_edge_weight``)."""
    if isinstance(layer, GCNConv):
        return layer(h, data.edge_index, gcn_edge_weight(data, data.edge_index))
    return layer(h, data.edge_index)


@dataclass
class FinetuneResult:
    """Test accuracy at the best-validation epoch, that validation accuracy and epoch, and the
    test accuracy after the last epoch."""

    test_acc: float
    val_acc: float
    best_epoch: int
    final_test_acc: float


def finetune(encoder: Encoder, data, lr: float = 0.01, weight_decay: float = 5e-4, epochs: int = 200, dropout: float = 0.5,
             seed: int = 0) -> FinetuneResult:
    """Train a copy of ``encoder`` plus an output layer (``output_layer``: a ``GCNConv``, or a
    one-head GAT layer after a GAT encoder) on the training labels.

    ``logits = output_layer(dropout(encoder(data)))``, full-batch Adam on the training nodes
    (:func:`~geossl.eval.classifier.train_and_select`); after every epoch validation accuracy is
    measured, and the test accuracy of the epoch with the best validation accuracy is reported (ties:
    the later epoch). The caller's encoder is not modified.

    Args:
        encoder: the pretrained encoder (copied).
        data: the PyG graph with ``y`` and ``train_mask``/``val_mask``/``test_mask``.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        epochs: training epochs.
        dropout: dropout before the classifier layer.
        seed: seed of the classifier's initialisation and of dropout.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = copy.deepcopy(encoder).train()
    head = output_layer(model, int(data.y.max()) + 1).to(data.x.device)

    def accuracy(mask) -> float:
        pred = classify(head, model(data), data).argmax(1)
        return float((pred[mask] == data.y[mask]).float().mean())

    def loss() -> torch.Tensor:
        logits = classify(head, F.dropout(model(data), dropout, training=True), data)
        return F.cross_entropy(logits[data.train_mask], data.y[data.train_mask])

    chosen = train_and_select([model, head], loss, lambda: accuracy(data.val_mask), lr, weight_decay, epochs,
                              test=lambda: accuracy(data.test_mask))
    with torch.no_grad():
        test_acc = accuracy(data.test_mask)
    torch.random.set_rng_state(state)
    return FinetuneResult(test_acc=test_acc, val_acc=chosen.val_score, best_epoch=chosen.best_epoch, final_test_acc=chosen.final_test)
