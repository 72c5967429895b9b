import math

import pytest
import torch

from geossl.errors import GeosslError
from geossl.eval import linear_probe, rankme


def test_rankme_known_answers():
    assert math.isclose(rankme(torch.eye(16)), 16.0, rel_tol=1e-4)
    rank_one = torch.randn(50, 1) @ torch.randn(1, 8)
    assert rankme(rank_one) < 1.01
    # two equal singular values and zeros -> effective rank 2
    z = torch.zeros(10, 5)
    z[0, 0] = z[1, 1] = 3.0
    assert math.isclose(rankme(z), 2.0, rel_tol=1e-4)


def test_rankme_rejects_empty():
    with pytest.raises(ValueError):
        rankme(torch.zeros(0, 3))


def test_linear_probe_separable_and_selected_on_validation():
    torch.manual_seed(0)
    n = 300
    y = torch.randint(0, 3, (n,))
    x = torch.nn.functional.one_hot(y, 3).float() * 5 + 0.1 * torch.randn(n, 3)
    idx = torch.randperm(n)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][idx[:60]] = True
    masks[1][idx[60:160]] = True
    masks[2][idx[160:]] = True
    res = linear_probe(x, y, *masks, lr=0.1, weight_decay=0.0, epochs=50)
    assert res.test_acc == 1.0 and res.val_acc == 1.0
    assert 0 <= res.best_epoch < 50


def test_linear_probe_never_selects_on_test():
    # Validation labels are shuffled noise: the selected epoch must not depend on the test split,
    # so replacing the test labels must not change the selected epoch.
    torch.manual_seed(1)
    n = 200
    y = torch.randint(0, 2, (n,))
    x = torch.nn.functional.one_hot(y, 2).float() + 0.5 * torch.randn(n, 2)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][:50] = True
    masks[1][50:100] = True
    masks[2][100:] = True
    a = linear_probe(x, y, *masks, epochs=40)
    y2 = y.clone()
    y2[100:] = 1 - y2[100:]
    b = linear_probe(x, y2, *masks, epochs=40)
    assert a.best_epoch == b.best_epoch and a.val_acc == b.val_acc
    assert math.isclose(a.test_acc + b.test_acc, 1.0, rel_tol=1e-6)


def test_linear_probe_normalize_reads_unit_length_embeddings():
    torch.manual_seed(2)
    n = 120
    y = torch.randint(0, 3, (n,))
    x = torch.randn(n, 8) * torch.rand(n, 1) * 50
    masks = [torch.arange(n) % 3 == k for k in range(3)]
    a = linear_probe(x, y, *masks, epochs=30, normalize=True)
    b = linear_probe(torch.nn.functional.normalize(x, dim=1), y, *masks, epochs=30)
    c = linear_probe(x, y, *masks, epochs=30)
    assert (a.test_acc, a.val_acc, a.best_epoch) == (b.test_acc, b.val_acc, b.best_epoch)
    assert (a.val_acc, a.best_epoch) != (c.val_acc, c.best_epoch)  # the scales differ, so does the probe


def test_svc_cross_validation_on_separable_and_on_random_labels():
    from geossl.eval import svc_cross_validation

    g = torch.Generator().manual_seed(0)
    y = torch.arange(100) % 2
    separable = torch.randn(100, 4, generator=g) + 4.0 * y[:, None]
    r = svc_cross_validation(separable, y)
    assert r.acc == 100.0 and r.std == 0.0 and len(r.fold_accs) == 10 and all(c in (1e-3, 1e-2, 0.1, 1.0, 10.0) for c in r.chosen_C)
    noise = svc_cross_validation(torch.randn(100, 4, generator=g), y)
    assert 20.0 < noise.acc < 80.0  # chance level, not memorised
    # the folds are fixed by fold_seed: the same inputs give the same answer
    assert svc_cross_validation(separable, y, fold_seed=3).fold_accs == svc_cross_validation(separable, y, fold_seed=3).fold_accs


def test_miou_and_overall_accuracy_on_a_hand_counted_confusion():
    from geossl.eval.seg_probe import confusion, iou_scores

    labels = torch.tensor([0, 0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    conf = confusion(pred, labels, 4)
    assert conf.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]  # the -1 point is ignored
    miou, oa, per_class = iou_scores(conf)
    # IoU: class 0: 2 / 3, class 1: 1 / (2 + 2 - 1), class 2: 1 / (2 + 1 - 1); class 3 neither present nor predicted
    assert per_class[:3] == pytest.approx([2 / 3, 1 / 3, 1 / 2]) and math.isnan(per_class[3])
    assert miou == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3) and oa == pytest.approx(4 / 6)


def test_segmentation_probe_separates_classes_that_a_linear_layer_can_and_selects_on_validation():
    from geossl.eval import seg_probe

    g = torch.Generator().manual_seed(0)

    def points(n):
        y = torch.randint(0, 3, (n,), generator=g)
        x = torch.randn(n, 8, generator=g) * 0.3
        x[torch.arange(n), y] += 3.0  # class c lives along axis c
        return x, y

    (tx, ty), (vx, vy), (sx, sy) = points(600), points(200), points(300)
    r = seg_probe(tx, ty, vx, vy, sx, sy, 3, epochs=100)
    assert r.miou > 0.95 and r.oa > 0.97 and r.val_miou > 0.95 and 0 <= r.best_epoch < 100
    noise = seg_probe(torch.randn(600, 8, generator=g), ty, vx, vy, sx, sy, 3, epochs=100)
    assert noise.miou < 0.6  # features that carry no label information do not score
    with pytest.raises(GeosslError, match="no labels"):
        seg_probe(tx, torch.full_like(ty, -1), vx, vy, sx, sy, 3)


def test_train_and_select_restores_the_best_validation_epoch_later_of_ties():
    """Validation scores 0.1, 0.5, 0.5, 0.2, nan: epoch 2 is selected (ties go to the later epoch) and its weights are
    restored; the final test score is taken before the restore."""
    from torch import nn

    from geossl.eval.classifier import train_and_select

    torch.manual_seed(0)
    layer = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    scores, weights = iter([0.1, 0.5, 0.5, 0.2, float("nan")]), []

    def validate():
        weights.append(layer.weight.detach().clone())
        return next(scores)

    chosen = train_and_select([layer], lambda: layer(x).pow(2).mean(), validate, lr=0.1, weight_decay=0.0, epochs=5,
                              test=lambda: float(layer.weight.sum()))
    assert (chosen.val_score, chosen.best_epoch) == (0.5, 2)
    assert torch.equal(layer.weight, weights[2]) and not torch.equal(weights[2], weights[4])
    assert chosen.final_test == float(weights[4].sum()) and not layer.training
