"""SelfTask: each task's targets on hand-made graphs, no label leakage, both strategies."""

import json

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from geossl.errors import ConfigError, UnknownNameError
from geossl.graph.encoders import GAT, GCN, GATLayer
from geossl.graph.finetune import finetune
from geossl.graph.methods import SelfTask
from geossl.graph.selftask import PRETEXT_TASKS
from geossl.graph.selftask import pseudo_labels as pl
from tests.conftest import requires_cora, run_killed_after_epoch


def _undirected(pairs, n, x=None, y=None):
    e = torch.tensor(pairs).T
    ei = torch.cat([e, e.flip(0)], 1)
    ei = torch.cat([ei, torch.arange(n).repeat(2, 1)], 1)  # self-loops, as the Planetoid loader adds them
    train = torch.zeros(n, dtype=torch.bool)
    train[:2] = True
    val, test = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    val[2:4], test[4:] = True, True
    return Data(x=x if x is not None else torch.eye(n), edge_index=ei, y=y if y is not None else torch.arange(n) % 2,
                train_mask=train, val_mask=val, test_mask=test)


PATH6 = _undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], 6)
# two triangles joined by the bridge 2-3
BARBELL = _undirected([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (3, 5)], 6)


def test_node_property_classes_degrees_at_the_reference_thresholds():
    star = _undirected([(0, k) for k in range(1, 10)] + [(1, 2), (2, 3), (3, 4)], 10)
    # degrees 9 2 3 3 2 1 1 1 1 1: > 7 -> 2, 3-7 -> 1, <= 2 -> 0 (isolated and degree-1 nodes too)
    t = PRETEXT_TASKS.get("node_property")(star, 4)
    assert t.target.tolist() == [2, 0, 1, 1, 0, 0, 0, 0, 0, 0] and t.head.out_features == 3
    t = PRETEXT_TASKS.get("node_property")(PATH6, 4, thresholds=[1])
    assert t.target.tolist() == [0, 1, 1, 1, 1, 0]  # path degrees 1 2 2 2 2 1


def test_pairwise_distance_classes_are_hop_counts():
    t = PRETEXT_TASKS.get("pairwise_distance")(PATH6, 4, anchors=6, pairs_per_class=50)
    n = 6
    for c, flat in enumerate(t.by_class):
        for f in flat.tolist():
            i, j = int(t.anchors[f // n]), f % n
            assert min(abs(i - j), 4) - 1 == c  # on a path the hop distance is |i - j|
    assert len(t.by_class[0]) == 10 and len(t.by_class[3]) == 6  # 5 edges both ways; pairs 4-5 apart
    assert t.loss(torch.randn(6, 4), PATH6).isfinite()


def test_distance2clusters_regresses_inverse_hops_to_each_cluster_centre():
    t = PRETEXT_TASKS.get("distance2clusters")(BARBELL, 4, clusters=2)
    parts = t.clusters.tolist()
    assert len(set(parts[:3])) == 1 and len(set(parts[3:])) == 1 and parts[0] != parts[3]  # METIS cuts the bridge
    # centres are the highest-degree nodes 2 and 3; 1 / hop distance by hand, 0 at the centre itself
    to2, to3 = [1, 1, 0, 1, 0.5, 0.5], [0.5, 0.5, 1, 0, 1, 1]
    cols = sorted(t.target.T.tolist(), key=lambda c: c[2])
    assert cols == [to2, to3]


def test_distance2clusters_scores_unreachable_centres_zero():
    # a triangle and a separate edge: the edge's nodes cannot reach the triangle's centre
    g = _undirected([(0, 1), (1, 2), (0, 2), (3, 4)], 5)
    t = PRETEXT_TASKS.get("distance2clusters")(g, 4, clusters=2)
    assert t.target.min() >= 0 and t.target.max() <= 1
    tri = [c for c in t.target.T.tolist() if c[3] == c[4] == 0]
    assert len(tri) == 1 and sorted(tri[0][:3]) == [0, 1, 1]


def test_edge_mask_hides_its_edges_and_samples_true_non_edges():
    t = PRETEXT_TASKS.get("edge_mask")(BARBELL, 4, rate=0.3)
    pos = t.pairs[:, t.target == 1]
    neg = t.pairs[:, t.target == 0]
    edges = {(int(a), int(b)) for a, b in BARBELL.edge_index.T}
    visible = {(int(a), int(b)) for a, b in t.corrupt(BARBELL).edge_index.T}
    assert pos.shape[1] == neg.shape[1] == 2  # 30% of 7 undirected edges, and as many non-edges
    for a, b in pos.T.tolist():
        assert (a, b) in edges and (a, b) not in visible and (b, a) not in visible
    for a, b in neg.T.tolist():
        assert (a, b) not in edges and a != b
    assert len(visible) == len(edges) - 4


def test_attribute_mask_zeroes_unlabelled_nodes_and_regresses_their_pca():
    x = torch.rand(6, 5, generator=torch.Generator().manual_seed(0))
    data = _undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], 6, x=x)
    t = PRETEXT_TASKS.get("attribute_mask")(data, 4, rate=0.5, pca_dims=3)
    masked = t.masked.tolist()
    assert len(masked) == 2 and not any(data.train_mask[m] for m in masked)
    seen = t.corrupt(data).x
    assert torch.all(seen[masked] == 0) and torch.equal(seen[[i for i in range(6) if i not in masked]], x[[i for i in range(6) if i not in masked]])
    from sklearn.decomposition import PCA

    ref = PCA(n_components=3, svd_solver="full").fit_transform(x.numpy())[masked]
    assert np.allclose(np.abs(t.target.numpy()), np.abs(ref), atol=1e-4)  # components up to sign


def test_corrupt_leaves_the_input_graph_alone_and_reuses_the_corrupted_features():
    x = torch.rand(6, 5, generator=torch.Generator().manual_seed(0))
    data = _undirected([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], 6, x=x)
    x0, edges0 = data.x.clone(), data.edge_index.clone()
    mask = PRETEXT_TASKS.get("attribute_mask")(data, 4, rate=0.5, pca_dims=3)
    hide = PRETEXT_TASKS.get("edge_mask")(data, 4, rate=0.4)
    first = mask.corrupt(hide.corrupt(data))
    second = mask.corrupt(hide.corrupt(data))
    assert torch.equal(data.x, x0) and torch.equal(data.edge_index, edges0)  # the clean graph is unchanged
    assert first.x is second.x  # one zeroed tensor for every step, so the encoder's row cache holds
    assert first.edge_index.shape[1] < edges0.shape[1] and torch.all(first.x[mask.masked] == 0)
    data.x.add_(1.0)  # new features (a new version): the zeroed copy follows them
    third = mask.corrupt(data)
    assert third.x is not first.x and torch.equal(third.x[mask.masked], torch.zeros(2, 5))
    keep = [i for i in range(6) if i not in mask.masked.tolist()]
    assert torch.equal(third.x[keep], x0[keep] + 1.0)


def test_pairwise_attr_sim_partners():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    data = _undirected([(0, 1), (1, 2), (2, 3)], 4, x=x)
    t = PRETEXT_TASKS.get("pairwise_attr_sim")(data, 4, k=1)
    assert t.partners[0, 0, 0] == 1 and torch.isclose(t.partner_sim[0, 0, 0], torch.tensor(1.0))  # node 0's twin
    assert t.partners[1, 0, 0] == 2 and torch.isclose(t.partner_sim[1, 0, 0], torch.tensor(0.0))  # orthogonal
    assert t.loss(torch.randn(4, 4), data).isfinite()


def _method(data, task, strategy="joint", seed=0, encoder="gcn"):
    torch.manual_seed(seed)
    if encoder == "gat":
        enc = GAT(in_dim=data.x.shape[1], hidden=8, layers=1, heads=2, feat_drop=0.6, attn_drop=0.3, activation="elu")
    else:
        enc = GCN(in_dim=data.x.shape[1], hidden=8, layers=1, dropout=0.5)
    return SelfTask(enc, data.x.shape[1], data=data, num_classes=2, task=task, strategy=strategy, seed=seed)


@pytest.mark.parametrize("task", ["edge_mask+pairwise_distance+node_property", "attribute_mask+distance2clusters+pairwise_attr_sim",
                                  "distance2labeled+context_label+ensemble_label+corrected_label"])
@pytest.mark.parametrize("encoder", ["gcn", "gat"])
def test_joint_training_never_reads_validation_or_test_labels(task, encoder):
    x = torch.rand(6, 5, generator=torch.Generator().manual_seed(1))
    a = _undirected([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (3, 5)], 6, x=x, y=torch.tensor([0, 1, 0, 1, 0, 1]))
    b = a.clone()
    b.y = torch.tensor([0, 1, 1, 0, 1, 0])  # same training labels, other validation/test labels
    grads = []
    for data in (a, b):
        m = _method(data, task, encoder=encoder)
        torch.manual_seed(5)
        out = m(data)
        out["loss"].backward()
        grads.append([p.grad.clone() for p in m.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) and all(torch.equal(g, h) for g, h in zip(*grads))


def test_gat_backbone_ends_in_a_one_head_gat_layer():
    m = _method(BARBELL, "pairwise_distance+context_label", encoder="gat")
    head = m.classifier
    assert isinstance(head, GATLayer) and head.heads == 1 and head.out_dim == 2 and head.in_dim == 8
    assert head.attn_drop == 0.3  # the encoder's attention dropout
    out = m(BARBELL)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.encoder.parameters()) and head.fc.weight.grad is not None
    assert m.classifier(m.encoder(BARBELL), BARBELL.edge_index).shape == (6, 2)
    assert set(m.accuracies(BARBELL)) == {"train_acc", "val_acc", "test_acc"}


def test_finetune_leaves_the_pretrained_encoder_untouched_on_gcn_and_gat():
    for enc in (GCN(in_dim=6, hidden=8, layers=1), GAT(in_dim=6, hidden=8, layers=1, heads=2)):
        before = {k: v.clone() for k, v in enc.state_dict().items()}
        finetune(enc, BARBELL, epochs=5)
        assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


@pytest.mark.parametrize("strategy", ["joint", "two_stage"])
def test_heads_read_the_dropped_embedding_except_context_label(strategy):
    """As in the reference (train_ssl.py: ``layer=1.5``, but ``layer=1`` for ContextLabel): the
    pairwise-distance head sees the embedding after the classifier's dropout, with the very mask
    the classifier sees; the context-label head sees the embedding itself."""
    torch.manual_seed(0)
    enc = GCN(in_dim=BARBELL.x.shape[1], hidden=8, layers=1, dropout=0.0)  # the presets' backbone
    m = SelfTask(enc, BARBELL.x.shape[1], data=BARBELL, num_classes=2, task="pairwise_distance+context_label",
                 strategy=strategy)
    seen, cls_in = {}, []
    for task in m.tasks:
        task.loss = lambda h, data, name=type(task).__name__: seen.setdefault(name, h).sum()
    if m.classifier is not None:
        m.classifier.register_forward_pre_hook(lambda mod, args: cls_in.append(args[0]))
    torch.manual_seed(0)
    m.train()
    m(BARBELL)
    h = m.encoder(BARBELL)  # no input dropout: the same embedding again
    assert torch.equal(seen["ContextLabel"], h)
    dropped = seen["PairwiseDistance"]
    kept = dropped != 0
    assert 0 < kept.sum() < h.ne(0).sum()  # some units dropped
    assert torch.allclose(dropped[kept], 2 * h[kept])  # the rest scaled by 1 / (1 - 0.5)
    if cls_in:
        assert torch.equal(cls_in[0], dropped)
    m.eval()
    seen.clear()
    m(BARBELL)
    assert torch.equal(seen["PairwiseDistance"], seen["ContextLabel"])  # no dropout in eval


def test_two_stage_has_no_classifier_and_no_label_loss():
    m = _method(BARBELL, "pairwise_distance", strategy="two_stage")
    out = m(BARBELL)
    assert m.classifier is None and "ce" not in out and torch.equal(out["loss"], out["ssl"] if out["ssl"].dim() == 0 else out["loss"])


def test_bad_task_names_and_weights():
    with pytest.raises(UnknownNameError, match="Valid pretext tasks: .*pairwise_distance"):
        _method(BARBELL, "pairwise_distanse")
    with pytest.raises(ConfigError, match="2 values for 1 tasks"):
        SelfTask(GCN(in_dim=6, hidden=4, layers=1), 6, data=BARBELL, num_classes=2, task="node_property", weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="supervised baseline"):
        _method(BARBELL, "none", strategy="two_stage")


def test_task_options_reach_the_selected_task_and_bad_ones_are_refused():
    m = SelfTask(GCN(in_dim=6, hidden=4, layers=1), 6, data=BARBELL, num_classes=2, task="corrected_label+node_property",
                 options={"corrected_label": {"samples": 3, "alpha": 0.5}, "edge_mask": {"rate": 0.2}})
    assert (m.tasks[0].samples, m.tasks[0].alpha) == (3, 0.5)  # edge_mask's options wait until it is selected
    with pytest.raises(UnknownNameError, match="Valid pretext tasks"):
        SelfTask(GCN(in_dim=6, hidden=4, layers=1), 6, data=BARBELL, num_classes=2, task="node_property",
                 options={"corected_label": {"samples": 3}})
    with pytest.raises(ConfigError, match="Unknown option.*sample.*Valid options: .*samples"):
        SelfTask(GCN(in_dim=6, hidden=4, layers=1), 6, data=BARBELL, num_classes=2, task="corrected_label",
                 options={"corrected_label": {"sample": 3}})


def test_targets_are_deterministic_per_seed():
    a = PRETEXT_TASKS.get("edge_mask")(BARBELL, 4, seed=3)
    b = PRETEXT_TASKS.get("edge_mask")(BARBELL, 4, seed=3)
    assert torch.equal(a.pairs, b.pairs)


def test_label_informed_tasks_read_labels_only_through_the_training_mask():
    a = _undirected([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (3, 5)], 6, y=torch.tensor([0, 1, 0, 1, 0, 1]))
    b = a.clone()
    b.y = torch.tensor([0, 1, 7, 9, 8, 6])  # other (even impossible) labels outside the training nodes
    for name in ["distance2labeled", "context_label", "ensemble_label", "corrected_label"]:
        ta, tb = (PRETEXT_TASKS.get(name)(d, 4, seed=0, num_classes=2) for d in (a, b))
        assert torch.equal(ta.target, tb.target), name
        assert ta.unlabeled.tolist() == [2, 3, 4, 5]


def test_distance2labeled_is_mean_inverse_hops_to_each_class():
    # PATH6 trains on node 0 (class 0) and node 1 (class 1)
    t = PRETEXT_TASKS.get("distance2labeled")(PATH6, 4, num_classes=2)
    expected = torch.tensor([[0, 1], [1, 0], [1 / 2, 1], [1 / 3, 1 / 2], [1 / 4, 1 / 3], [1 / 5, 1 / 4]])
    assert torch.allclose(t.target, expected.float())
    two = _undirected([(0, 2), (1, 2), (2, 3)], 4)
    two.train_mask = torch.tensor([True, True, False, False])
    two.y = torch.tensor([0, 0, 1, 1])  # both training nodes in class 0: the class-0 column averages them
    t = PRETEXT_TASKS.get("distance2labeled")(two, 4, num_classes=2)
    assert torch.allclose(t.target[:, 0], torch.tensor([(0 + 1 / 2) / 2, (1 / 2 + 0) / 2, 1.0, 1 / 2]))
    assert torch.equal(t.target[:, 1], torch.zeros(4))  # no training node of class 1


def test_context_distribution_counts_one_and_two_hop_neighbours():
    a, a2 = pl.two_hop_pattern(PRETEXT_TASKS.get("node_property")(BARBELL, 4).adj)
    dist = pl.context_distribution(a, a2, torch.tensor([0, 1, 1, 0, 0, 0]), 2)
    # node 0: 1-hop {1, 2}; 2-hop {1, 2, 3} -> labels 1, 1, 1, 1, 0
    assert torch.allclose(dist[0], torch.tensor([1 / 5, 4 / 5]))
    # node 3: 1-hop {2, 4, 5} -> 1, 0, 0; 2-hop {0, 1} (via 2) and {4, 5} (via each other) -> 0, 1, 0, 0
    assert torch.allclose(dist[3], torch.tensor([5 / 7, 2 / 7]))


def test_context_label_regresses_the_neighbourhood_distribution_of_pseudo_labels():
    t = PRETEXT_TASKS.get("context_label")(BARBELL, 4, num_classes=2)
    assert t.pseudo[:2].tolist() == [0, 1]  # training nodes keep their labels
    expected = pl.context_distribution(t.a, t.a2, t.pseudo, 2)
    assert torch.equal(t.target, expected) and torch.allclose(t.target.sum(1), torch.ones(6))
    t.eval()
    h = torch.randn(6, 4)
    assert torch.allclose(t.loss(h, BARBELL), ((torch.softmax(t.head(h), 1) - expected)[2:] ** 2).mean())
    with pytest.raises(ConfigError, match="Valid choices: lp, ica"):
        PRETEXT_TASKS.get("context_label")(BARBELL, 4, num_classes=2, source="gcn")


def test_label_propagation_spreads_training_labels_along_edges():
    # two triangles; one training node in each with different classes
    train_idx, y = torch.tensor([0, 5]), torch.tensor([0, 1])
    probs = pl.label_propagation(BARBELL.edge_index, 6, train_idx, y, 2)
    assert probs[0].tolist() == [1, 0] and probs[5].tolist() == [0, 1]
    assert probs.argmax(1).tolist() == [0, 0, 0, 1, 1, 1] and torch.allclose(probs.sum(1), torch.ones(6))


def test_iterative_classification_uses_features_and_neighbour_labels():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    x = (torch.rand(6, 20, generator=g) < 0.2).float()
    x[:, 0], x[:, 1] = (y == 0).float(), (y == 1).float()  # one feature per class
    adj = PRETEXT_TASKS.get("node_property")(BARBELL, 4).adj
    probs = pl.iterative_classification(x, adj, torch.tensor([0, 5]), torch.tensor([0, 1]), 2)
    assert probs.argmax(1).tolist() == [0, 0, 0, 1, 1, 1]
    assert probs[0].tolist() == [1, 0] and torch.allclose(probs.sum(1), torch.ones(6, dtype=probs.dtype))


def test_density_prototypes_correct_wrong_pseudo_labels():
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([[5.0, 0, 0], [0, 5.0, 0]])
    h = torch.cat([centre[0] + 0.3 * torch.randn(20, 3, generator=g), centre[1] + 0.3 * torch.randn(20, 3, generator=g)])
    labels = torch.tensor([0] * 20 + [1] * 20)
    labels[[3, 25]] = labels[[25, 3]]  # two wrong pseudo-labels
    fixed = pl.density_prototype_labels(h, labels, torch.tensor([3, 25]), 2, per_class=20, prototypes=4, generator=g)
    assert fixed.tolist() == [0, 1]


def test_corrected_label_adds_the_corrected_target_loss():
    torch.manual_seed(0)
    t = PRETEXT_TASKS.get("corrected_label")(BARBELL, 4, num_classes=2, samples=3, alpha=0.0)
    t.eval()
    h = torch.randn(6, 4)
    assert torch.allclose(t.loss(h, BARBELL), ((torch.softmax(t.head(h), 1) - t.target)[2:] ** 2).mean())
    t.alpha = 2.0
    assert t.loss(h, BARBELL) >= ((torch.softmax(t.head(h), 1) - t.target)[2:] ** 2).mean()


def _dense_gcn(x, pairs, n, loop_weight, conv):
    """A GCN layer by hand: D^-1/2 (A + diag(loop_weight)) D^-1/2 X W^T + b."""
    a = torch.zeros(n, n)
    for i, j in pairs:
        a[i, j] = a[j, i] = 1.0
    a += torch.diag(loop_weight)
    d = a.sum(1).rsqrt()
    return (d[:, None] * a * d[None, :]) @ x @ conv.lin.weight.T + conv.bias


@pytest.mark.parametrize("sparse_input", [False, True])
def test_gcn_propagates_raw_self_loops_with_weight_two(sparse_input):
    """A graph that keeps its raw self-loops (``self_loop_weight``) is normalised as A + I with
    those loops weighing 2, on the dense and the CSR input path; without it, as plain A + I."""
    from geossl.graph.finetune import classify, output_layer

    pairs = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (3, 5)]
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.one_hot(torch.arange(6) * 7, 80).float() if sparse_input else torch.rand(6, 5, generator=g)
    data = _undirected(pairs, 6, x=x)
    enc = GCN(in_dim=x.shape[1], hidden=4, layers=1, dropout=0.0, last_activation=False).eval()
    ones = torch.ones(6)
    assert torch.allclose(enc(data), _dense_gcn(x, pairs, 6, ones, enc.convs[0]), atol=1e-6)
    data.self_loop_weight = torch.tensor([1.0, 2.0, 1.0, 1.0, 2.0, 1.0])
    assert torch.allclose(enc(data), _dense_gcn(x, pairs, 6, data.self_loop_weight, enc.convs[0]), atol=1e-6)
    assert not torch.allclose(enc(data), _dense_gcn(x, pairs, 6, ones, enc.convs[0]), atol=1e-4)
    head = output_layer(enc, 3)
    h = torch.rand(6, 4, generator=g)
    assert torch.allclose(classify(head, h, data), _dense_gcn(h, pairs, 6, data.self_loop_weight, head), atol=1e-6)


def test_edge_mask_keeps_the_self_loop_weights_of_the_graph_it_hides_edges_from():
    data = BARBELL.clone()
    data.self_loop_weight = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    task = PRETEXT_TASKS.get("edge_mask")(data, embed_dim=4, rate=0.3)
    seen = task.corrupt(data)
    assert seen.edge_index.shape[1] < data.edge_index.shape[1]
    from geossl.graph.encoders.common import gcn_edge_weight

    w = gcn_edge_weight(seen, seen.edge_index)
    loops = seen.edge_index[0] == seen.edge_index[1]
    assert int(loops.sum()) == 6 and w[loops].tolist() == [2.0, 1.0, 1.0, 1.0, 1.0, 1.0] and bool((w[~loops] == 1).all())


@requires_cora
def test_joint_training_selects_the_same_best_epoch_after_a_resume(tmp_path, monkeypatch):
    """The best validation epoch comes from the engine's monitor history, which the checkpoint carries: a run killed
    after epoch 3 and resumed reports the epoch, validation and test accuracy of the uninterrupted run (the monitor
    calls were counted before, so a resumed run numbered its epochs from 1 again and forgot the earlier ones)."""
    from geossl import cli

    args = ["pretrain", "graph=selftask", "dataset=cora", "graph.task=pairwise_distance", "trainer.epochs=6",
            "trainer.monitor_every=1", "trainer.checkpoint_every=1", "trainer.progress=false", "trainer.threads=1"]
    assert cli.main([*args, f"run_dir={tmp_path / 'full'}"]) == 0
    assert run_killed_after_epoch(monkeypatch, 3, lambda: cli.main([*args, f"run_dir={tmp_path / 'cut'}"])) == 130
    assert cli.main([*args, f"trainer.resume={tmp_path / 'cut'}"]) == 0
    full, cut = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("full", "cut"))
    assert 1 <= full["best_epoch"] <= 6
    assert (cut["best_epoch"], cut["val_acc"], cut["test_acc"]) == (full["best_epoch"], full["val_acc"], full["test_acc"])


def test_best_validation_epoch_takes_the_later_of_tied_epochs():
    from geossl.graph.adapter import best_validation_epoch

    history = [(1, {"val_acc": 0.5, "test_acc": 0.4}), (2, {"val_acc": 0.7, "test_acc": 0.6}), (3, {"val_acc": 0.7, "test_acc": 0.65}),
               (4, {"val_acc": 0.6, "test_acc": 0.9})]
    assert best_validation_epoch(history) == {"val_acc": 0.7, "test_acc": 0.65, "best_epoch": 3}
    assert best_validation_epoch([]) == {}
