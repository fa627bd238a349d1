"""Stand-in for torch.utils.tensorboard's SummaryWriter, used only when tensorboard (not packaged
in Debian) is missing.

Dassl's trainer writes its loss, accuracy and learning rate to TensorBoard after every batch
(`write_scalar`). Without the package the import fails; this writer keeps nothing. The real
one appends events to a queue drained by a background thread, so leaving it out can only make
the official trainer's timed run slightly faster, never slower: it does not favour atp.
"""


class SummaryWriter:
    def __init__(self, log_dir=None, *args, **kwargs):
        self.log_dir = log_dir

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass
