"""Makes atp's tiny CLIP loadable by the official ATPrompt code, without changing that code.

`atp pretrain` writes `tiny_clip.pt`: a plain `torch.save` dict in OpenAI's state-dict
layout (the key names and shapes of OpenAI's released checkpoints; docs/pretrain.md), with
its own BPE vocabulary `tiny_clip_vocab.txt.gz` in OpenAI's merges-file format. The official
trainers load CLIP through `load_clip_to_cpu(cfg)`: `clip._MODELS[cfg.MODEL.BACKBONE.NAME]`
gives a URL, `clip._download(url)` a local file, `torch.jit.load` fails on a non-TorchScript
file and `torch.load` + `clip.build_model` build the model. Registering the tiny CLIP under
a backbone name and letting `_download` return its path runs that code as released.

`clip.build_model` infers every size from the state dict except the heads (width // 64): the
tiny CLIP's 128-wide towers have 2 heads, as atp built them. It falls back to a non-strict
load when keys do not match; `check_state_dict` rejects that case here, so a mismatch is an
error rather than a silently random model (run.sh checks it once, before the timed runs).

The vocabulary: the official `SimpleTokenizer` takes the merges file as its default argument;
its default is replaced before the trainers make their module-level tokenizers, and the one
`clip.clip` made when the package was imported is replaced, so every tokenizer of the
process reads the tiny CLIP's vocabulary.

One format detail: the official tokenizer splits the file on "\n" and keeps lines 1 to 48894
(`merges[1:49152-256-2+1]`). OpenAI's file has more lines than that, so its final line break
is cut away; a file with fewer merges that ends with a line break (atp's does, and atp's reader
takes that break as the end of the last merge) would give the official reader one empty merge
more, a vocabulary of 733 for 732 embedding rows and the end-of-text token out of range. The
harness therefore hands the official code a copy without the final line break (same merges).
"""
import gzip
import os

import torch

BACKBONE_NAME = "atp-tiny-clip"


def official_vocabulary_copy(vocab_path, work_dir):
    """The vocabulary as the official reader needs it (no final line break), written under work_dir."""
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(f"BPE vocabulary not found: {vocab_path}")
    with gzip.open(vocab_path, "rb") as f:
        text = f.read()
    while text.endswith(b"\n"):
        text = text[:-1]
    copy = os.path.join(work_dir, "tiny_clip_vocab.official.txt.gz")
    with gzip.open(copy, "wb") as f:
        f.write(text)
    return copy


def use_vocabulary(vocab_path):
    """Call before importing any trainer; vocab_path from official_vocabulary_copy."""
    import clip.simple_tokenizer as simple_tokenizer
    from clip import clip
    simple_tokenizer.SimpleTokenizer.__init__.__defaults__ = (os.path.abspath(vocab_path),)
    clip._tokenizer = simple_tokenizer.SimpleTokenizer()


def check_state_dict(checkpoint_path):
    """The state dict must load strictly into the official CLIP that build_model makes of it."""
    from clip import clip
    state = torch.load(checkpoint_path, map_location="cpu")
    design = {"trainer": "CoOp", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0}
    model = clip.build_model(dict(state), design)
    expected = set(model.state_dict().keys())
    given = set(k for k in state.keys() if k not in ("input_resolution", "context_length", "vocab_size"))
    if expected != given:
        raise ValueError(f"{checkpoint_path}: keys do not match the official CLIP: missing "
                         f"{sorted(expected - given)[:5]}, unexpected {sorted(given - expected)[:5]}")
    return model


def register(checkpoint_path):
    """After use_vocabulary: cfg.MODEL.BACKBONE.NAME = BACKBONE_NAME then loads checkpoint_path."""
    from clip import clip
    if not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"tiny CLIP checkpoint not found: {checkpoint_path}")
    checkpoint_path = os.path.abspath(checkpoint_path)
    clip._MODELS[BACKBONE_NAME] = checkpoint_path
    download = clip._download

    def local_or_download(url, *args, **kwargs):
        return url if url == checkpoint_path else download(url, *args, **kwargs)

    clip._download = local_or_download
