import numpy as np
from nlp_transfer.rank.estimators import logme, hscore, knn_accuracy, linear_probe
rng = np.random.default_rng(0)
n, d = 200, 16
y = rng.integers(0, 2, n)
separable = rng.normal(size=(n, d)); separable[:, 0] += 10 * (2 * y - 1)   # class is the sign of column 0
noise = rng.normal(size=(n, d)) + 100.0                                     # no information, constant offset
for name, x in [("separable", separable), ("noise+100", noise), ("separable+100", separable + 100)]:
    print(f"{name:14s} logme={logme(x, y):.4f} hscore={hscore(x, y):.4f} knn={knn_accuracy(x, y):.3f} probe={linear_probe(x, y):.3f}")
x = rng.normal(size=(n, d))
print("dup hscore:", hscore(x, y), "->", hscore(np.hstack([x, x]), y), "| logme", logme(x, y), "->", logme(np.hstack([x, x]), y))
