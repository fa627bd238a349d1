"""Stand-in for wilds (not packaged in Debian), used only when the real one is missing.

Dassl's dataset package imports `wilds.get_dataset` for its WILDS domain-generalisation
datasets, which the benchmark never builds; the stand-in fails loudly if one is asked for.
"""


def get_dataset(*args, **kwargs):
    raise RuntimeError("wilds is not installed; the benchmark uses no WILDS dataset")
