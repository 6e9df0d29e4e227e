"""The training loop's callbacks, each on a fake run, and user callbacks through fit()."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from segwise.engine.callbacks import (
    Callback,
    CallbackList,
    Checkpoints,
    EarlyStopping,
    LossTerms,
    MetricsLog,
    OverlayPictures,
    PredictionHints,
    ProgressLines,
    StepReport,
    TrainingRun,
    TrainingState,
    ValidationReport,
    checkpoint_payload,
    restore_state,
)
from segwise.engine.progress import RunPlan
from segwise.runs.checkpoint import load_checkpoint

_ONE_PROCESS = SimpleNamespace(is_main=True, enabled=False, world_size=1, rank=0)


def _fake_run(tmp_path=None, **fields):
    """The attributes the callbacks read, on a plain namespace."""
    run = SimpleNamespace(
        run_dir=tmp_path, ctx=_ONE_PROCESS, talk=True, state=TrainingState(), hint=None,
        val_seconds=None, plan=RunPlan(10, 5, None, None), monitor="mean_dice",
        config=SimpleNamespace(train=SimpleNamespace(val_every=1, time_limit=None)),
        device=torch.device("cpu"), stop=None,
    )
    run.__dict__.update(fields)
    run.request_stop = lambda reason, early=False: TrainingRun.request_stop(run, reason,
                                                                            early=early)
    run.say = lambda text: print(text) if run.talk else None
    run.elapsed = lambda: 125.0
    return run


def test_record_score_first_is_best_ties_and_nan_are_not():
    state = TrainingState()
    assert state.record_score(0.5, 1)  # the first score is the best so far
    assert (state.best_score, state.best_epoch, state.bad_epochs) == (0.5, 1, 0)
    assert not state.record_score(0.5, 2)  # a tie keeps best.pt
    assert not state.record_score(math.nan, 3)
    assert state.bad_epochs == 2
    assert state.record_score(0.6, 4)
    assert (state.best_score, state.best_epoch, state.bad_epochs) == (0.6, 4, 0)


def test_callback_list_fires_in_order_and_skips_no_op_hooks():
    calls = []

    class Partial(Callback):  # only one hook overridden
        def on_epoch_end(self, run, record, improved):
            calls.append(("partial", record["epoch"]))

    class DuckTyped:  # no base class at all
        def on_epoch_end(self, run, record, improved):
            calls.append(("duck", improved))

    callbacks = CallbackList([Partial(), DuckTyped()])
    assert callbacks.has("on_epoch_end") and not callbacks.has("on_step_end")
    callbacks.fire("on_step_end", None, None)  # nobody listens: nothing happens
    callbacks.fire("on_epoch_end", None, {"epoch": 3}, True)
    assert calls == [("partial", 3), ("duck", True)]


def test_callback_list_refuses_a_class_and_an_object_without_hooks():
    with pytest.raises(TypeError, match=r"ProgressLines is a class; pass an instance"):
        CallbackList([ProgressLines])
    with pytest.raises(TypeError, match="has none of the hooks"):
        CallbackList([object()])


def test_early_stopping_after_patience_bad_validations():
    run = _fake_run()
    stopper = EarlyStopping(patience=2)
    run.state.bad_epochs = 1
    stopper.on_epoch_end(run, {}, False)
    assert run.stop is None
    run.state.bad_epochs = 2
    stopper.on_epoch_end(run, {}, False)
    assert run.stop.reason == "early stopping: no improvement for 2 validations"
    assert run.stop.early
    never = _fake_run()
    never.state.bad_epochs = 100
    EarlyStopping(patience=None).on_epoch_end(never, {}, False)
    assert never.stop is None


def test_the_first_stop_request_wins():
    run = _fake_run()
    run.request_stop("first")
    run.request_stop("second", early=True)
    assert (run.stop.reason, run.stop.early) == ("first", False)


def _steps(progress, run, n, epoch=1):
    progress.on_epoch_start(run, epoch)
    for done in range(1, n + 1):
        run.state.step += 1
        progress.on_step_end(run, StepReport(epoch, done, 0.5, 4, 0.5, 4 * done))


def test_progress_lines_at_step_one_and_every_fifth_of_the_epoch(capsys):
    run = _fake_run()  # 10 steps per epoch: a fifth is 2 steps
    progress = ProgressLines()
    _steps(progress, run, 10)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" step ")[1].split()[0] for line in lines] == [
        "1/10", "2/10", "4/10", "6/10", "8/10", "10/10"]
    assert lines[0].startswith("  epoch 1 step 1/10 loss 0.5000 ")
    run.talk = False
    _steps(progress, run, 10)
    progress.on_validation_progress(run, 3, 10, 60.0)
    progress.on_epoch_end(run, {"epoch": 1, "train_loss": 0.5, "train_images_per_s": 3.0},
                          False)
    assert capsys.readouterr().out == ""  # quiet, or not the main process


def test_progress_lines_validation_only_when_slow_and_the_epoch_line(capsys):
    run = _fake_run(hint="predicts background everywhere")
    progress = ProgressLines()
    progress.on_validation_progress(run, 3, 10, 4.9)
    assert capsys.readouterr().out == ""
    progress.on_validation_progress(run, 3, 10, 5.0)  # 0.6 img/s, 7 left: eta 11.7 s
    assert capsys.readouterr().out == "  validating 3/10 images, 0.6 img/s, eta 12 s\n"
    record = {"epoch": 2, "train_loss": 0.5, "train_images_per_s": 3.0, "val_mean_dice": 0.0}
    progress.on_epoch_end(run, record, True)
    assert capsys.readouterr().out == (
        "epoch 2/5 | loss 0.5000 | 3.0 img/s | mean_dice 0.0000 | * best | "
        "note: predicts background everywhere | 2 min elapsed\n")


def _report(improved=True, overlays=(), census=None):
    return ValidationReport(epoch=1, summary={"mean_dice": 0.0}, score=0.0, improved=improved,
                            seconds=1.0, overlays=list(overlays), census=census)


def test_prediction_hints_read_the_reports_census():
    census = {"pixels_per_class": [100, 0], "true_pixels_per_class": [60, 40]}
    names = ("background", "nucleus")
    run = _fake_run(adapter=SimpleNamespace(),
                    info=SimpleNamespace(class_names=names, labels=SimpleNamespace(names=names)))
    PredictionHints().on_validation_end(run, _report(census=census))
    assert run.hint.startswith("predicts background everywhere (no foreground pixel)")
    PredictionHints().on_validation_end(run, _report())  # no census: no hint
    assert run.hint is None


def test_loss_terms_are_batch_weighted_epoch_means():
    run = _fake_run(adapter=SimpleNamespace())
    terms = LossTerms()
    terms.on_epoch_start(run, 1)
    terms.on_step_end(run, StepReport(1, 1, 4.0, 2, 4.0, 2, {"mask": 1.0, "box": 3.0}))
    terms.on_step_end(run, StepReport(1, 2, 4.0, 4, 4.0, 6, {"mask": 4.0, "box": 0.0}))
    record = {"epoch": 1}
    terms.on_train_end(run, record)
    # mask (2 * 1 + 4 * 4) / 6 = 3; box (2 * 3 + 4 * 0) / 6 = 1
    assert record == {"epoch": 1, "loss/box": 1.0, "loss/mask": 3.0}
    terms.on_epoch_start(run, 2)  # a new epoch starts from zero
    terms.on_step_end(run, StepReport(2, 1, 4.0, 2, 4.0, 2))  # a loss without terms
    record = {"epoch": 2}
    terms.on_train_end(run, record)
    assert record == {"epoch": 2}


def _checkpoint_run(tmp_path, is_main=True):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = TrainingState(epoch=2, step=7, best_score=0.4, best_epoch=1, bad_epochs=1,
                          history=[{"epoch": 1}, {"epoch": 2}], planned_epochs=3)
    return _fake_run(
        tmp_path, ctx=SimpleNamespace(is_main=is_main, enabled=False, world_size=1),
        state=state, model=model, optimizer=optimizer, ema=None,
        scaler=torch.amp.GradScaler("cpu", enabled=False), model_args={"name": "linear"},
        config=SimpleNamespace(to_dict=lambda: {"train": {"epochs": 3}}),
        info=SimpleNamespace(to_dict=lambda: {"task": "binary"}),
        adapter=SimpleNamespace(class_weights=(1.0, 3.0)),
    )


def test_checkpoints_last_every_epoch_best_only_when_improved_and_restore(tmp_path):
    run = _checkpoint_run(tmp_path)
    Checkpoints().on_epoch_end(run, {}, False)
    assert (tmp_path / "last.pt").is_file() and not (tmp_path / "best.pt").exists()
    Checkpoints().on_epoch_end(run, {}, True)
    best = load_checkpoint(tmp_path / "best.pt")
    assert "optimizer" not in best["training"] and best["training"]["epoch"] == 2
    last = load_checkpoint(tmp_path / "last.pt")
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = restore_state(last, model, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                          None)
    assert state == run.state
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  run.model.state_dict().values(), strict=True))
    assert optimizer.state_dict()["state"][0]["step"] == 1  # the Adam moments came back
    assert checkpoint_payload(run)["training"]["planned_epochs"] == 3
    assert last["class_weights"] == [1.0, 3.0]  # the loss's class weights, as numbers


def test_writers_write_nothing_off_the_main_process(tmp_path):
    run = _checkpoint_run(tmp_path, is_main=False)
    Checkpoints().on_epoch_end(run, {}, True)
    log = MetricsLog()
    log.on_fit_start(run)
    log.on_epoch_end(run, {}, True)
    log.on_fit_end(run)
    OverlayPictures().on_validation_end(run, _report(overlays=[object()]))
    assert list(tmp_path.iterdir()) == []


def test_overlays_only_for_a_new_best(tmp_path):
    run = _checkpoint_run(tmp_path)
    OverlayPictures().on_validation_end(run, _report(improved=False, overlays=[object()]))
    OverlayPictures().on_validation_end(run, _report(improved=True, overlays=[]))
    assert not (tmp_path / "overlays.png").exists()


def test_metrics_log_rewrites_the_whole_history(tmp_path):
    run = _fake_run(tmp_path)
    run.state.history = [{"epoch": 1, "train_loss": 0.5, "lr": 1e-3, "loss/mask": 0.25}]
    log = MetricsLog()
    log.on_fit_start(run)
    log.on_epoch_end(run, {}, True)
    run.state.history = [*run.state.history, {"epoch": 2, "train_loss": math.nan, "lr": 1e-4}]
    log.on_epoch_end(run, {}, False)
    log.on_fit_end(run)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"epoch": 1, "train_loss": 0.5, "lr": 1e-3, "loss/mask": 0.25},
                    {"epoch": 2, "train_loss": None, "lr": 1e-4}]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "epoch,train_loss,lr,loss/mask"


class _Recorder(Callback):
    def __init__(self, stop_after=None) -> None:
        self.calls: list[tuple] = []
        self.stop_after = stop_after

    def on_fit_start(self, run):
        self.calls.append(("fit_start", run.state.epoch))

    def on_epoch_start(self, run, epoch):
        self.calls.append(("epoch_start", epoch))

    def on_step_end(self, run, step):
        self.calls.append(("step", step.epoch, step.done))

    def on_train_end(self, run, record):
        self.calls.append(("train_end", record["epoch"]))

    def on_validation_end(self, run, report):
        self.calls.append(("validation_end", report.epoch, report.improved))

    def on_epoch_end(self, run, record, improved):
        # the built-in callbacks ran first: the epoch is saved and logged
        saved = load_checkpoint(run.run_dir / "last.pt")["training"]["epoch"]
        logged = len((run.run_dir / "metrics.jsonl").read_text().splitlines())
        self.calls.append(("epoch_end", record["epoch"], saved, logged))
        if record["epoch"] == self.stop_after:
            run.request_stop("my callback says stop")

    def on_fit_end(self, run):
        self.calls.append(("fit_end", run.state.epoch))


@pytest.mark.slow
def test_user_callbacks_see_every_hook_in_order_and_can_stop_the_run(tiny_binary, tmp_path,
                                                                     fast_config, capsys):
    from segwise.engine.trainer import fit

    recorder = _Recorder(stop_after=2)
    # 8 train images / batch 4 = 2 steps per epoch; validation every epoch; stop after 2 of 3
    result = fit(fast_config(tiny_binary, epochs=3), tmp_path / "run", callbacks=[recorder])
    assert [h["epoch"] for h in result.history] == [1, 2]
    improved = {1: True, 2: result.best_epoch == 2}  # the first validation is always best
    expected = [("fit_start", 0)]
    for e in (1, 2):
        expected += [("epoch_start", e), ("step", e, 1), ("step", e, 2), ("train_end", e),
                     ("validation_end", e, improved[e]), ("epoch_end", e, e, e)]
    assert recorder.calls == [*expected, ("fit_end", 2)]
    assert not result.stopped_early  # only EarlyStopping's request counts as early stopping
    assert "my callback says stop" in capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_an_adapters_loss_terms_reach_metrics_jsonl(tiny_binary, tmp_path, fast_config,
                                                    monkeypatch):
    from segwise.engine.adapters import SemanticAdapter, StepLoss
    from segwise.engine.trainer import fit

    real = SemanticAdapter.training_loss

    def with_terms(self, model, batch):
        loss = real(self, model, batch).total
        return StepLoss(loss, {"half": loss.detach() / 2})

    monkeypatch.setattr(SemanticAdapter, "training_loss", with_terms)
    result = fit(fast_config(tiny_binary, epochs=1), tmp_path / "run", quiet=True)
    record = result.history[0]
    assert record["loss/half"] == pytest.approx(record["train_loss"] / 2, rel=1e-6)
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert logged["loss/half"] == record["loss/half"]


def test_fit_refuses_a_callback_class_before_writing(tiny_binary, tmp_path, fast_config):
    from segwise.engine.trainer import fit

    with pytest.raises(TypeError, match="pass an instance"):
        fit(fast_config(tiny_binary), tmp_path / "run", callbacks=[ProgressLines])
    assert not (tmp_path / "run").exists()
