"""The Avocado network as a pure :class:`torch.nn.Module`: embeddings and the dense network.

It knows integer indices and tensors only; labels, genomic positions, devices and training live in
:class:`epitensor.Avocado`. The five embedding tables are ``biosample``, ``assay`` and the genome
tables ``genome_25bp`` (one row per bin), ``genome_250bp`` (one row per 10 bins) and ``genome_5kbp``
(one row per 200 bins); their concatenation feeds ``n_layers`` Dense(ReLU) layers and a linear
output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import AvocadoConfig
from .kernels import onednn_dense_active, onednn_linear

GENOME_TABLES = ("genome_25bp", "genome_250bp", "genome_5kbp")


def _embedding(n_rows: int, n_factors: int, scale: float) -> nn.Embedding:
    table = nn.Embedding(max(n_rows, 0), n_factors)
    nn.init.uniform_(table.weight, -scale, scale)
    return table


class AvocadoModule(nn.Module):
    """Multi-scale deep tensor factorization: five embeddings -> Dense(ReLU) x n_layers -> Dense(1).

    Parameters
    ----------
    n_biosamples, n_assays : int
        Rows of the biosample and assay tables.
    n_rows : tuple of 3 int
        Rows of the 25 bp, 250 bp and 5 kbp genome tables.
    config : AvocadoConfig
        Widths and initialisation scale.

    Examples
    --------
    >>> import torch
    >>> from epitensor.model import AvocadoConfig, AvocadoModule
    >>> m = AvocadoModule(3, 2, (100, 10, 1), AvocadoConfig(n_nodes=16))
    >>> idx = torch.zeros(5, dtype=torch.long)
    >>> m(idx, idx, idx, idx, idx).shape
    torch.Size([5])
    """

    def __init__(self, n_biosamples: int, n_assays: int, n_rows: tuple[int, int, int], config: AvocadoConfig):
        super().__init__()
        c = config
        self.config = c
        self.biosample = _embedding(n_biosamples, c.n_biosample_factors, c.init_scale)
        self.assay = _embedding(n_assays, c.n_assay_factors, c.init_scale)
        self.set_genome_tables(n_rows)
        layers, width = [], c.n_input
        for _ in range(c.n_layers):
            layers += [nn.Linear(width, c.n_nodes), nn.ReLU()]
            width = c.n_nodes
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, 1)
        for layer in [*self.hidden, self.output]:
            if isinstance(layer, nn.Linear):  # Keras defaults: Glorot uniform, zero bias
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ genome tables
    def set_genome_tables(self, n_rows: tuple[int, int, int]) -> None:
        """Replace the three genome tables by fresh ones (uniform init) with ``n_rows`` rows.

        Used by the first fit and by genome-factor fitting of new blocks (stage 2): the network and
        the biosample/assay tables are untouched.
        """
        c = self.config
        widths = (c.n_25bp_factors, c.n_250bp_factors, c.n_5kbp_factors)
        device = self.biosample.weight.device
        for name, n, w in zip(GENOME_TABLES, n_rows, widths):
            setattr(self, name, _embedding(int(n), w, c.init_scale).to(device))

    def genome_tables(self) -> tuple[nn.Embedding, nn.Embedding, nn.Embedding]:
        """The 25 bp, 250 bp and 5 kbp genome tables."""
        return tuple(getattr(self, n) for n in GENOME_TABLES)

    def n_genome_rows(self) -> tuple[int, int, int]:
        return tuple(t.num_embeddings for t in self.genome_tables())

    def network_parameters(self) -> list[nn.Parameter]:
        """Parameters of the dense layers (not the embeddings)."""
        return [*self.hidden.parameters(), *self.output.parameters()]

    def extend_table(self, kind: str, n_new: int) -> None:
        """Append ``n_new`` freshly initialised rows to the ``biosample`` or ``assay`` table.

        Existing rows keep their values bit for bit (for adding biosamples/assays to a trained model).
        """
        old = getattr(self, kind)
        new = _embedding(old.num_embeddings + n_new, old.embedding_dim, self.config.init_scale).to(old.weight.device)
        with torch.no_grad():
            new.weight[: old.num_embeddings] = old.weight
        setattr(self, kind, new)

    # ------------------------------------------------------------------ forward
    def genome_features(self, r25: torch.Tensor, r250: torch.Tensor, r5k: torch.Tensor) -> torch.Tensor:
        """Concatenated genome factors of rows ``(r25, r250, r5k)``, shape (n, 25 + 40 + 45)."""
        return torch.cat([self.genome_25bp(r25), self.genome_250bp(r250), self.genome_5kbp(r5k)], dim=1)

    def forward(self, biosample, assay, r25, r250, r5k, project_first_layer: bool = False) -> torch.Tensor:
        """Predicted signal (arcsinh scale), shape (n,), for index tensors of shape (n,)."""
        genome = self.genome_features(r25, r250, r5k)
        if project_first_layer and self.config.n_layers > 0:
            h = self.first_layer_projected(biosample, assay, genome)
            rest = self.hidden[2:]
        else:
            h = torch.cat([self.biosample(biosample), self.assay(assay), genome], dim=1)
            rest = self.hidden
        return self.output(self.dense(h, rest)).squeeze(1)

    @staticmethod
    def dense(h: torch.Tensor, layers: nn.Sequential) -> torch.Tensor:
        """``layers(h)`` for a run of Dense, ReLU layers; through oneDNN with the ReLU fused inside
        :func:`epitensor.model.kernels.kernel_context` ``(device, "onednn")`` on fp32 CPU tensors."""
        if not (onednn_dense_active() and h.device.type == "cpu" and h.dtype == torch.float32):
            return layers(h)
        for i in range(0, len(layers), 2):
            h = onednn_linear(h, layers[i].weight, layers[i].bias, relu=True)
        return h

    def first_layer_projected(self, biosample, assay, genome) -> torch.Tensor:
        """ReLU(W [b; a; g] + c) computed as ReLU(P[pair] + g Wg^T) with P = B Wb^T + A Wa^T + c.

        P has one row per distinct (biosample, assay) pair of the batch, so the biosample and assay
        parts of the first layer cost one row per pair instead of one per sample. The gathered rows
        are the matrix product's accumulator (``addmm``'s input), so the gather is the only extra
        pass over the (n, H) activations, and its backward one ``index_add_`` (see
        :class:`GatherRows`).
        """
        n_assays = self.assay.num_embeddings
        pairs, inverse = torch.unique(biosample * n_assays + assay, return_inverse=True)
        table = self.pair_projection(pairs // n_assays, pairs % n_assays)
        w_genome = self.hidden[0].weight[:, self.config.n_biosample_factors + self.config.n_assay_factors :]
        return torch.relu(torch.addmm(GatherRows.apply(table, inverse), genome, w_genome.t()))

    def pair_projection(self, biosample, assay) -> torch.Tensor:
        """P = B Wb^T + A Wa^T + c for pairs ``biosample``/``assay`` (p,): the first layer's biosample
        and assay part and its bias, shape (p, H), shared by training and prediction."""
        first = self.hidden[0]
        nb, na = self.config.n_biosample_factors, self.config.n_assay_factors
        table = torch.addmm(first.bias, self.biosample(biosample), first.weight[:, :nb].t())
        return torch.addmm(table, self.assay(assay), first.weight[:, nb : nb + na].t())

    def predict_tracks(self, biosample, assay, r25, r250, r5k) -> torch.Tensor:
        """Predictions for every (pair, position): ``biosample``/``assay`` index the pairs (p,),
        ``r*`` the positions (n,); returns (p, n). The genome part of the first layer is computed once
        per position and shared by all pairs.
        """
        genome = self.genome_features(r25, r250, r5k)
        if self.config.n_layers == 0:
            x = torch.cat([self.biosample(biosample)[:, None].expand(-1, len(r25), -1),
                           self.assay(assay)[:, None].expand(-1, len(r25), -1),
                           genome[None].expand(len(biosample), -1, -1)], dim=2)
            return self.output(x).squeeze(2)
        w_genome = self.hidden[0].weight[:, self.config.n_biosample_factors + self.config.n_assay_factors :]
        g = genome @ w_genome.t()  # (n, H)
        h = torch.relu(g[None, :, :] + self.pair_projection(biosample, assay)[:, None, :])
        return self.output(self.dense(h, self.hidden[2:])).squeeze(2)


class GatherRows(torch.autograd.Function):
    """``table[index]`` whose backward adds the gradient rows into the table with ``index_add_``.

    Plain advanced indexing backs up through ``index_put_(accumulate=True)``, which on CPU is
    several times slower than ``index_add_`` for the (n, H) gradients of the first layer.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.n_rows = table.shape[0]
        return table[index]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        out = torch.zeros((ctx.n_rows, grad.shape[1]), dtype=grad.dtype, device=grad.device)
        return out.index_add_(0, index, grad), None


def n_parameters(module: nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(math.prod(p.shape) for p in module.parameters())
