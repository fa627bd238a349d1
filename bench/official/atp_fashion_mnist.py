"""A Dassl dataset for the Fashion-MNIST that `atp data import-fashion-mnist` writes.

Registered in Dassl's DATASET_REGISTRY as `AtpFashionMNIST`. It builds the base-to-novel
lists exactly as the official dataset classes of ATPrompt/CoOp do (for example
`datasets/caltech101.py` of the official repository): the published-format split file
(`split_zhou_FashionMNIST.json`, read with the official `OxfordPets.read_split`), Dassl's
`generate_fewshot_dataset` (16 shots for train, min(16, 4) for val, in that order, from
Python's `random` seeded by train.py), then the official `OxfordPets.subsample_classes`.

Two deliberate differences from the official dataset classes:
- no `split_fewshot/shot_K-seed_S.pkl` cache is read or written: the data root may be
  read-only, and the cache only stores the draw made here (same seed, same `random` calls);
- `ATP_OFFICIAL_MAX_TEST_IMAGES=N` keeps N test images by the stride atp's
  `max_test_images` uses (image floor(i * len / N) for i < N), so that both trainers
  evaluate the same images.
"""
import os

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase

# The official ATPrompt checkout's own dataset helpers (on sys.path through the launcher).
from datasets.oxford_pets import OxfordPets


def every_nth(items, limit):
    """atp's EveryNth (worker/prompt/prompt_methods.cc): a stride, since test lists are grouped by class."""
    if limit <= 0 or len(items) <= limit:
        return items
    stride = len(items) / limit
    return [items[int(i * stride)] for i in range(limit)]


@DATASET_REGISTRY.register()
class AtpFashionMNIST(DatasetBase):
    dataset_dir = "fashion_mnist"

    def __init__(self, cfg):
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_FashionMNIST.json")
        if not os.path.isfile(self.split_path):
            raise FileNotFoundError(
                f"{self.split_path} not found: import the data with `atp data import-fashion-mnist --out {root}`")

        train, val, test = OxfordPets.read_split(self.split_path, self.image_dir)
        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots >= 1:
            train = self.generate_fewshot_dataset(train, num_shots=num_shots)
            val = self.generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
        train, val, test = OxfordPets.subsample_classes(train, val, test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        test = every_nth(test, int(os.environ.get("ATP_OFFICIAL_MAX_TEST_IMAGES", "0")))
        super().__init__(train_x=train, val=val, test=test)
