"""Storage precision of a track variable: how many bits of each imputed value are kept on disk.

Completing a consortium compendium is mostly imputations (ENCODE2018-Core on hg38: 400 x 84
tracks of 124 million bins, 14 TB as float32). The model's own error is far larger than float32's
resolution, so ``imputed`` can keep fewer bits at no cost in accuracy. A precision is chosen when
the variable is created (:func:`epitensor.store.add_track_variable`) and recorded in its attrs
(``precision``, ``precision_bound``); every later write into the variable applies it.

Precisions (``x``: a value as predicted, on the store's scale: arcsinh for ``transform="arcsinh"``):

``"float32"``
    Exact: the values as predicted.
``"bitround-N"`` (``1 <= N <= 22``)
    numcodecs' ``BitRound``: the float32 mantissa rounded to its top ``N`` bits, to nearest.
    ``|stored - x| <= 2**-(N + 1) * max(|x|, 2**-126)``: a relative bound, the same at every
    magnitude (below float32's smallest normal number, ``2**-126``, an absolute one).
``"quantize-N"`` (``0 <= N <= 7``)
    numcodecs' ``Quantize``: rounded to the nearest multiple of ``2**-b``, ``b = ceil(N * log2(10))``.
    ``|stored - x| <= 2**-(b + 1) < 0.5 * 10**-N``: an absolute bound.

For both, NaN stays NaN and infinities stay infinite; a finite value whose rounding would overflow
float32 is kept as it is. After the inverse transform of an arcsinh store (``sinh``), a stored
error ``e`` at ``x`` becomes at most ``cosh(|x| + e) * e``: relative (``~ e``) for large signal.

The rounding is done by epitensor's writers (zarr's and the direct chunk writer,
:class:`epitensor.store.chunk_files.ChunkFiles`, the same function), not by a codec in the array's metadata:
the chunks stay plain little-endian float32 with Blosc and CRC-32C, core Zarr v3 codecs that any
Zarr v3 client (zarr-python, tensorstore, zarrs) decodes to the same values. Rounded values have
runs of zero low bits; Blosc's bit shuffle with zstd turns them into the saving.

Examples
--------
>>> import numpy as np
>>> p = parse_precision("bitround-9")
>>> x = np.array([0.0, -1.3, 2.718281, np.nan], dtype=np.float32)
>>> stored = p.round(x)
>>> bool(np.all(np.abs(stored[:3] - x[:3]) <= 2.0**-10 * np.abs(x[:3]))), bool(np.isnan(stored[3]))
(True, True)
>>> parse_precision("quantize-2").step
0.0078125
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numcodecs
import numpy as np

from ..exceptions import ArgumentError, PrecisionError
from .codecs import compressors

#: Precision of newly created ``imputed`` variables: ``|stored - x| <= 2**-8`` on the store's scale.
#: The model is trained and scored by squared error on that same scale; rounding to a grid of step
#: ``s = 2**-7`` adds at most ``s**2 / 4`` (on average ``s**2 / 12``) to any squared error, a
#: vanishing fraction of the model's own mean squared error, whose square root is a sizeable
#: fraction of the signal's standard deviation.
DEFAULT_IMPUTED_PRECISION = "quantize-2"
#: Kept mantissa bits of ``bitround-N`` and decimal digits of ``quantize-N``.
BITROUND_BITS = (1, 22)
QUANTIZE_DIGITS = (0, 7)
_FORM = re.compile(r"^(float32|bitround-(\d+)|quantize-(\d+))$")
CHOICES = "'float32', 'bitround-N' (N = 1..22 kept mantissa bits) or 'quantize-N' (N = 0..7 decimal digits)"


@dataclass(frozen=True)
class Precision:
    """A parsed storage precision (see the module docstring); make one with :func:`parse_precision`.

    Attributes
    ----------
    name : str
        ``"float32"``, ``"bitround-N"`` or ``"quantize-N"``.
    kind : str
        ``"float32"``, ``"bitround"`` or ``"quantize"``.
    n : int
        Kept mantissa bits (bitround), decimal digits (quantize), 23 for float32.
    """

    name: str
    kind: str
    n: int

    @property
    def step(self) -> float:
        """Quantize's grid spacing ``2**-b`` (quantize only)."""
        if self.kind != "quantize":
            raise ArgumentError(f"precision {self.name!r} has no grid step (only quantize-N has one)")
        return 2.0 ** -math.ceil(math.log2(10.0**self.n))

    @property
    def bound(self) -> str:
        """The error bound, as a relation between the stored value and the predicted value ``x``."""
        if self.kind == "float32":
            return "exact: stored == x (float32)"
        if self.kind == "bitround":
            return f"|stored - x| <= 2**-{self.n + 1} * max(|x|, 2**-126) (relative)"
        return f"|stored - x| <= {self.step / 2!r} (absolute: half the grid step 2**-{-int(math.log2(self.step))})"

    def attrs(self) -> dict:
        """The attributes that record this precision on a variable."""
        return {"precision": self.name, "precision_bound": self.bound}

    def compressors(self) -> tuple:
        """The array's bytes-to-bytes codecs: the project's Blosc lz4 for float32; for rounded
        values Blosc zstd (level 1) with bit shuffle (the zero low bits compress away); then CRC-32C."""
        return compressors(rounded=self.kind != "float32")

    def round(self, values) -> np.ndarray:
        """``values`` as stored at this precision: float32, rounded within :attr:`bound`.

        Idempotent (rounding stored values changes nothing), so a writer may apply it to values
        already rounded.
        """
        x = np.ascontiguousarray(values, dtype=np.float32)
        if self.kind == "float32":
            return x
        if self.kind == "bitround":
            out = numcodecs.BitRound(keepbits=self.n).encode(x).view(np.float32)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                out = numcodecs.Quantize(digits=self.n, dtype="<f4").encode(x)
        out = np.array(out, dtype=np.float32).reshape(x.shape)
        changed = ~np.isfinite(x) | ~np.isfinite(out)
        if changed.any():  # NaN (whose payload bits rounding would alter), infinities, overflow: kept
            out[changed] = x[changed]
        return out


def parse_precision(value) -> Precision:
    """The :class:`Precision` named by ``value`` (a name or a Precision).

    Raises
    ------
    ArgumentError
        Not one of the forms, or N outside its range.

    Examples
    --------
    >>> parse_precision("bitround-7")
    Precision(name='bitround-7', kind='bitround', n=7)
    """
    if isinstance(value, Precision):
        return value
    match = _FORM.match(str(value).strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise ArgumentError(f"precision {value!r} is not one of {CHOICES}")
    if match[1] == "float32":
        return Precision("float32", "float32", 23)
    kind, n = ("bitround", int(match[2])) if match[2] is not None else ("quantize", int(match[3]))
    lo, hi = BITROUND_BITS if kind == "bitround" else QUANTIZE_DIGITS
    if not lo <= n <= hi:
        raise ArgumentError(f"precision {value!r}: N must be in {lo}..{hi} for {kind}-N (choices: {CHOICES})")
    return Precision(f"{kind}-{n}", kind, n)


def default_precision(name: str) -> Precision:
    """The precision a new variable ``name`` gets when none is asked for:
    :data:`DEFAULT_IMPUTED_PRECISION` for ``imputed``, float32 for everything else.

    Examples
    --------
    >>> default_precision("imputed").name, default_precision("held_out").name
    ('quantize-2', 'float32')
    """
    return parse_precision(DEFAULT_IMPUTED_PRECISION if name == "imputed" else "float32")


def precision_of(attrs) -> Precision:
    """The precision recorded in a variable's ``attrs`` (float32 when none is: variables written
    before precisions existed, and every ``signal``).

    Examples
    --------
    >>> precision_of({"precision": "quantize-3"}).name, precision_of({}).name
    ('quantize-3', 'float32')
    """
    return parse_precision(attrs.get("precision", "float32"))


def check_precision(store, name: str, attrs, wanted) -> Precision:
    """The precision to write into the existing variable ``name``: its own, when ``wanted`` is None
    or the same.

    Raises
    ------
    PrecisionError
        ``wanted`` differs from the variable's precision (one variable holds one precision).
    """
    have = precision_of(attrs)
    if wanted is None or parse_precision(wanted) == have:
        return have
    wanted = parse_precision(wanted)
    raise PrecisionError(
        f"store {store}: variable {name!r} is stored at precision {have.name!r} ({have.bound}); cannot write values "
        f"at precision {wanted.name!r} into it. Write with precision={have.name!r} (or leave precision unset to use "
        f"the variable's own), or delete the folder {name}/ of the store to rewrite every imputation at "
        f"{wanted.name!r}")
