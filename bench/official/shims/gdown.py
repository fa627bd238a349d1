"""Stand-in for gdown (not packaged in Debian), used only when the real one is missing.

Dassl imports it to download datasets from Google Drive; the benchmark's data is local and
nothing calls it, so the stand-in only fails loudly if something ever does.
"""


def download(*args, **kwargs):
    raise RuntimeError("gdown is not installed; the benchmark never downloads data")
