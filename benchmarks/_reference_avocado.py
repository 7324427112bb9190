"""Time the reference Avocado (Keras 2 API on TensorFlow) - run by the reference's own Python.

Usage (from bench_training.py): python _reference_avocado.py DATA.npz N_LAYERS N_NODES STEPS PRED_POSITIONS
Prints one JSON line: training samples/s and predictions/s. Follows ../shared/docs/REFERENCE_AVOCADO.md.
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tf_keras  # noqa: E402, F401  (must be imported before avocado)

for name, module in list(sys.modules.items()):
    if name == "tf_keras" or name.startswith("tf_keras."):
        sys.modules["keras" + name[len("tf_keras"):]] = module

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("BENCH_THREADS", "2")))
tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("BENCH_THREADS", "2")))

from avocado import Avocado  # noqa: E402

# The reference passes Keras 1's `pickle_safe=True` to fit_generator, which tf_keras 2.20 rejects;
# drop that one keyword (a shim around Keras, the reference's code is unchanged).
_fit_generator = tf_keras.Model.fit_generator


def _fit_generator_compat(self, *args, pickle_safe=None, **kwargs):
    return _fit_generator(self, *args, **kwargs)


tf_keras.Model.fit_generator = _fit_generator_compat


def main():
    path, n_layers, n_nodes, steps, n_pred = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    with np.load(path) as npz:
        values = npz["values"]
        celltypes, assays = list(npz["celltypes"]), list(npz["assays"])
        pairs = [tuple(p) for p in npz["pairs"]]
    n = values.shape[1]
    X = {p: values[i] for i, p in enumerate(pairs)}
    model = Avocado(celltypes, assays, n_genomic_positions=n, n_layers=n_layers, n_nodes=n_nodes, batch_size=40_000)
    model.fit(X, n_epochs=1, epoch_size=1, verbose=0)  # build and warm up
    t = time.perf_counter()
    model.fit(X, n_epochs=1, epoch_size=steps, verbose=0)
    train_s = time.perf_counter() - t
    model.predict(celltypes[0], assays[0], 0, min(n, 40_000))
    t = time.perf_counter()
    model.predict(celltypes[0], assays[0], 0, n_pred)
    pred_s = time.perf_counter() - t
    print(json.dumps({"train_samples_per_s": steps * 40_000 / train_s, "predictions_per_s": n_pred / pred_s}))


if __name__ == "__main__":
    main()
