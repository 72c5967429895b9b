"""The validation curve a fine-tuning run reports: read from its metrics.csv and from the CSVs of its resumptions."""

from geossl.pointcloud.finetuned import monitor_curve


def test_a_resumed_runs_curve_joins_its_logs_in_order(tmp_path):
    head = "monitor/val_mIoU,step,train/loss\n"
    (tmp_path / "metrics.csv").write_text(head + "0.1,100,2.0\n,150,1.5\n0.2,200,1.0\n")
    (tmp_path / "resumed-20261206-160921").mkdir()
    # resumed from the step-150 checkpoint: step 200 is measured again and replaces the first value
    (tmp_path / "resumed-20261206-160921" / "metrics.csv").write_text(head + "0.25,200,0.9\n0.3,300,0.8\n")
    (tmp_path / "resumed-20261206-170000").mkdir()
    (tmp_path / "resumed-20261206-170000" / "metrics.csv").write_text(head + "0.4,400,0.7\n")
    assert monitor_curve(tmp_path / "metrics.csv") == [{"step": 100, "val_mIoU": 0.1}, {"step": 200, "val_mIoU": 0.25},
                                                       {"step": 300, "val_mIoU": 0.3}, {"step": 400, "val_mIoU": 0.4}]
    assert monitor_curve(tmp_path / "missing" / "metrics.csv") == []
