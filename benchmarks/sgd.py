"""The authors' probe-training recipe, re-implemented faithfully in NumPy (float32, as on their GPU).

From Hyeonsu-Jeong/SelfPLL (train_linear.py, recipe.MD): a bias-free ``nn.Linear(d, K)`` (default
PyTorch init, U(-1/sqrt(d), 1/sqrt(d))), ``torch.optim.SGD(lr, momentum=0.9, weight_decay=wd)``,
batch 128 with shuffling, 200 epochs, learning rate x0.98 after every epoch; CIFAR-100 uses
lr = 0.05 and wd = 5e-5. The SD student is trained from scratch on the teacher's softmax
outputs (cross-entropy with probability targets); the PLL student starts from the teacher's
weights. The objective it minimises is ours with reg = wd (torch adds wd * W to the gradient).

Differences, all in the baseline's favour: the teacher's outputs are computed once instead of
with a teacher forward pass per batch; no test-set evaluation or checkpointing per epoch.
"""

from __future__ import annotations

import time

import numpy as np

AUTHORS_LR = {"cifar100": 0.05, "caltech256": 0.01, "food101": 0.01, "caltech101": 0.01, "stanfordcars": 0.1,
              "flowers102": 0.05}


def sgd_recipe(X, targets, reg, *, K, epochs=200, batch=128, lr=0.05, momentum=0.9, gamma=0.98, init=None, seed=0):
    """Train W (K, d) by the authors' recipe on integer labels (n,) or soft targets (n, K).

    Returns (W float64, seconds).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X32.shape
    labels = np.ndim(targets) == 1
    T = np.asarray(targets) if labels else np.ascontiguousarray(targets, dtype=np.float32)
    if init is None:
        bound = 1.0 / np.sqrt(d)
        W = rng.uniform(-bound, bound, size=(K, d)).astype(np.float32)
    else:
        W = np.array(init, dtype=np.float32)
    buf = None
    wd = np.float32(reg)
    mom = np.float32(momentum)
    for _ in range(epochs):
        order = rng.permutation(n)
        step = np.float32(lr)
        for s in range(0, n, batch):
            idx = order[s : s + batch]
            Xb = X32[idx]
            Z = Xb @ W.T
            Z -= Z.max(axis=1, keepdims=True)
            np.exp(Z, out=Z)
            Z /= Z.sum(axis=1, keepdims=True)
            if labels:
                Z[np.arange(idx.size), T[idx]] -= 1.0
            else:
                Z -= T[idx]
            Z /= np.float32(idx.size)
            g = Z.T @ Xb
            g += wd * W
            if buf is None:
                buf = g
            else:
                buf *= mom
                buf += g
            W -= step * buf
        lr *= gamma
    return W.astype(np.float64), time.perf_counter() - t0


def objective(X, targets, W, reg, chunk=16384):
    """Our training objective (1/n) sum_i CE(t_i, softmax(W x_i)) + reg/2 ||W||^2 and its
    max-abs gradient, in float64."""
    from selfdistill.probe import log_softmax

    n = X.shape[0]
    labels = np.ndim(targets) == 1
    total, G_X = 0.0, np.zeros_like(W)
    for s in range(0, n, chunk):
        Xc = np.asarray(X[s : s + chunk], dtype=np.float64)
        logP = log_softmax(Xc @ W.T)
        P = np.exp(logP)
        if labels:
            r = np.arange(Xc.shape[0])
            t = np.asarray(targets[s : s + chunk])
            total -= logP[r, t].sum()
            P[r, t] -= 1.0
        else:
            T = np.asarray(targets[s : s + chunk], dtype=np.float64)
            total -= (T * logP).sum()
            P -= T
        G_X += (Xc.T @ P).T
    f = total / n + 0.5 * reg * float(np.vdot(W, W))
    g = G_X / n + reg * W
    return f, float(np.abs(g).max())
