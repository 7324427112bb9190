"""Which torch device a model or a worker runs on."""

from __future__ import annotations

import torch

from ..exceptions import ModelError


def parse_device(device="auto") -> torch.device | None:
    """The torch device named by ``device`` (None for "auto"), or ModelError for a name torch does not know.

    Examples
    --------
    >>> parse_device("cpu"), parse_device("auto")
    (device(type='cpu'), None)
    """
    if device == "auto" or device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


def resolve_device(device="auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; ModelError for CUDA asked for but absent.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    device = parse_device(device)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return device


__all__ = ["parse_device", "resolve_device"]
