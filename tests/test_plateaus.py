"""Early stopping and the learning-rate cut follow Keras' rules, and survive a checkpoint's JSON."""

from __future__ import annotations

import json

from bird_model.plateaus import EarlyStopping, LearningRate


def test_early_stopping_stops_after_patience_flat_epochs_and_keeps_the_best() -> None:
    losses = [1.0, 0.8, 0.7, 0.72, 0.697, 0.71, 0.70, 0.71]  # 0.697 is not 0.005 below 0.7: no progress
    stopping = EarlyStopping(patience=3, min_delta=0.005)
    for epoch, loss in enumerate(losses, start=1):
        stopping = stopping.after(epoch, loss)
        if stopping.should_stop:
            break
    assert (epoch, stopping.best_epoch, stopping.best) == (6, 3, 0.7)


def test_the_learning_rate_is_cut_after_patience_flat_epochs_then_counts_afresh() -> None:
    rate = LearningRate(1e-4, patience=2)
    rates = []
    for loss in [1.0, 0.9, 0.95, 0.93, 0.92, 0.97, 0.8]:
        rate = rate.after(loss)
        rates.append(rate.rate)
    assert rates == [1e-4, 1e-4, 1e-4, 3e-5, 3e-5, 9e-6, 9e-6]


def test_both_come_back_from_a_checkpoint_unchanged() -> None:
    stopping = EarlyStopping(patience=5).after(1, 0.5).after(2, 0.6)
    rate = LearningRate(1e-3, patience=2).after(0.5).after(0.6)
    assert EarlyStopping.from_json(json.loads(json.dumps(stopping.to_json()))) == stopping
    assert LearningRate.from_json(json.loads(json.dumps(rate.to_json()))) == rate
