"""Hash-checked downloads of sample data into the user cache (pooch)."""

from __future__ import annotations

from pathlib import Path

from ..exceptions import DownloadError


def fetch_registry(registry: dict[str, str], base_url: str, folder_name: str, cache_dir=None, progress: bool = True,
                   kind: str = "data") -> Path:
    """Download every file of ``registry`` (name -> ``sha256:<hash>``) from ``base_url``.

    Files already in the cache with the right hash are not downloaded again; a wrong hash or a
    network error is a :class:`~epitensor.DownloadError` naming the file and the way around it.

    Parameters
    ----------
    registry : dict
    base_url : str
    folder_name : str
        Subfolder of the user cache (``pooch.os_cache("epitensor")``) used when ``cache_dir`` is None.
    cache_dir : str or Path, optional
    progress : bool
    kind : str
        What the files are, for the error message (e.g. ".npz").

    Returns
    -------
    Path
        The folder holding the files.
    """
    import pooch

    cache_dir = Path(cache_dir) if cache_dir else Path(pooch.os_cache("epitensor")) / folder_name
    fetcher = pooch.create(path=cache_dir, base_url=base_url, registry=registry, retry_if_failed=3)
    for name in sorted(fetcher.registry):
        try:
            fetcher.fetch(name, progressbar=progress)
        except Exception as err:  # network errors, hash mismatches
            raise DownloadError(
                f"could not download {base_url}{name} ({err}); check the network, or point "
                f"EPITENSOR_DATA at a folder holding the {kind} files (path=... works too)"
            ) from err
    return cache_dir
