"""Train a reference Avocado briefly, save it with its own ``model.save`` and store its predictions.

Run by the reference's own Python (from bench_reference_import.py):

    python _reference_avocado_save.py DATA.npz NAME N_LAYERS N_NODES EPOCH_SIZE

DATA.npz holds ``values`` (training tracks, n_tracks x n), ``celltypes``, ``assays`` and ``pairs``
(the training tracks' labels). Writes NAME.json, NAME.h5 and NAME_predictions.npz (``predictions``
of every (celltype, assay) pair over all n positions, ``pairs``) and prints one JSON line of timings.
"""

import json
import sys
import time

import numpy as np
from _reference_avocado import Avocado  # the tf_keras shim; the reference's code is unchanged


def main():
    path, name = sys.argv[1], sys.argv[2]
    n_layers, n_nodes, epoch_size = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    with np.load(path) as npz:
        values, pairs = npz["values"], [tuple(map(str, p)) for p in npz["pairs"]]
        celltypes, assays = [str(c) for c in npz["celltypes"]], [str(a) for a in npz["assays"]]
    n = values.shape[1]
    model = Avocado(celltypes, assays, n_genomic_positions=n, n_layers=n_layers, n_nodes=n_nodes, batch_size=40_000)
    t = time.perf_counter()
    model.fit({p: values[i] for i, p in enumerate(pairs)}, n_epochs=1, epoch_size=epoch_size, verbose=0)
    train_s = time.perf_counter() - t
    model.save(name)
    every = [(c, a) for c in celltypes for a in assays]
    t = time.perf_counter()
    predictions = np.stack([model.predict(c, a) for c, a in every]).astype(np.float32)
    predict_s = time.perf_counter() - t
    np.savez(f"{name}_predictions.npz", predictions=predictions, pairs=np.array(every))
    print(json.dumps({"train_s": train_s, "predict_s": predict_s, "n_predictions": predictions.size}))


if __name__ == "__main__":
    main()
