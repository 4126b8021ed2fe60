"""A small, deterministic training script: logistic regression on synthetic churn data.

Run it under `gitrun record -- python train.py --lr 0.1`; its gitrun.log_* calls
attach to the recorded run.  It needs only numpy (which pandas brings along).
"""

import argparse
import json

import numpy as np
import yaml

import gitrun

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--l2", type=float, default=0.0)
args = parser.parse_args()

with open("params.yaml") as f:  # data settings live in params.yaml (logged by gitrun record)
    seed = int(yaml.safe_load(f)["data"]["seed"])

rng = np.random.default_rng(seed)
X = rng.normal(size=(800, 8))
w_true = rng.normal(size=8)
y = (X @ w_true + rng.normal(scale=1.5, size=800) > 0).astype(float)
X_train, X_test, y_train, y_test = X[:600], X[600:], y[:600], y[600:]

with gitrun.start_run():
    gitrun.log_params({"lr": args.lr, "epochs": args.epochs, "l2": args.l2})
    w = np.zeros(8)
    b = 0.0
    for epoch in range(args.epochs):
        p = 1 / (1 + np.exp(-(X_train @ w + b)))
        w -= args.lr * (X_train.T @ (p - y_train) / len(y_train) + args.l2 * w)
        b -= args.lr * float(np.mean(p - y_train))
        loss = -np.mean(y_train * np.log(p + 1e-12) + (1 - y_train) * np.log(1 - p + 1e-12))
        gitrun.log_metric("loss", float(loss), step=epoch)

    pred = (1 / (1 + np.exp(-(X_test @ w + b)))) > 0.5
    tp = float(np.sum(pred & (y_test == 1)))
    precision = tp / max(float(np.sum(pred)), 1.0)
    recall = tp / max(float(np.sum(y_test == 1)), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    gitrun.log_metrics(
        {
            "accuracy": float(np.mean(pred == (y_test == 1))),
            "precision": precision,
            "recall": recall,
            "f1_score": f1,
        }
    )
    np.save("model.npy", np.append(w, b))
    gitrun.log_artifact("model.npy")
    with open("report.json", "w") as f:
        json.dump({"f1_score": round(f1, 6)}, f)
    gitrun.log_artifact("report.json")
    print(f"lr={args.lr} l2={args.l2}: f1={f1:.3f}")
