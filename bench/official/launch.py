"""Runs the official ATPrompt code (a checkout the user provides) for the side-by-side benchmark.

    launch.py COMMON check
    launch.py COMMON train -- TRAIN.PY ARGUMENTS...
    launch.py COMMON [--steps N] step
    launch.py COMMON tokens < LINES
    COMMON = --atprompt DIR --dassl DIR [--yacs DIR] --work DIR [--threads N]
             [--backbone tiny_clip.pt --vocab tiny_clip_vocab.txt.gz]

`train` runs the official train.py unchanged (runpy, as `python train.py ...` would) after
registering atp's Fashion-MNIST (atp_fashion_mnist.py) and tiny CLIP (atp_tiny_clip.py).
`step` times CoOp+ATPrompt training steps of the official CustomCLIP of trainers/coop_atp.py
on a random-weight ViT-B/16 at atp_bench_methods' settings. `check` verifies the set-up and
that the tiny CLIP loads strictly into the official CLIP. `tokens` prints the official
tokenizer's 77 ids of each line on stdin with the tiny CLIP's vocabulary, as `atp clip
tokenize` does, so that run.sh can compare the two.

Packages that Debian does not ship (ftfy, gdown, wilds, tensorboard) are replaced, only when
missing, by the stand-ins in shims/ (each file says why it does not change what is timed),
copied into WORK/shims, which goes on sys.path. Nothing is written into the checkouts.
"""
import argparse
import ctypes
import importlib.util
import os
import runpy
import shutil
import sys
import time

sys.dont_write_bytecode = True  # nothing written into this folder or the official checkouts
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    print(f"launch.py: {message}", file=sys.stderr)
    sys.exit(2)


def install_shims(work):
    shim_dir = os.path.join(work, "shims")
    shutil.rmtree(shim_dir, ignore_errors=True)  # only what this run finds missing
    os.makedirs(shim_dir)
    sys.path.insert(0, shim_dir)
    used = []
    for name, source in (("ftfy", "ftfy.py"), ("gdown", "gdown.py"), ("wilds", "wilds")):
        if importlib.util.find_spec(name) is not None:
            continue
        src = os.path.join(HERE, "shims", source)
        dst = os.path.join(shim_dir, source)
        if os.path.isdir(src):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
        used.append(name)
    importlib.invalidate_caches()
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(HERE, "shims"))
        import tensorboard_writer
        sys.path.pop(0)
        sys.modules["torch.utils.tensorboard"] = tensorboard_writer
        used.append("tensorboard")
    return used


def setup_paths(args):
    for flag, path, marker in (("--atprompt", args.atprompt, "train.py"), ("--dassl", args.dassl, "dassl"),
                               ("--yacs", args.yacs, "yacs")):
        if path and not os.path.exists(os.path.join(path, marker)):
            fail(f"{flag} {path}: no {marker} there (expected a checkout of the official repository)")
    # Ours first (the dataset class), then the official code; yacs only if given (else installed).
    for path in reversed([HERE, os.path.abspath(args.atprompt), os.path.abspath(args.dassl)] +
                         ([os.path.abspath(args.yacs)] if args.yacs else [])):
        sys.path.insert(0, path)
    if importlib.util.find_spec("yacs") is None:
        fail("yacs is not installed and --yacs was not given (a checkout of rbgirshick/yacs)")


def blas_core():
    """OpenBLAS's kernel and threads in this process (the library libtorch loaded), or '?'."""
    with open("/proc/self/maps") as maps:
        libs = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    for lib in libs:
        try:
            blas = ctypes.CDLL(lib)
            blas.openblas_get_corename.restype = ctypes.c_char_p
            return (f"{os.path.basename(lib)}: OpenBLAS kernel {blas.openblas_get_corename().decode()}, "
                    f"{blas.openblas_get_num_threads()} threads")
        except (OSError, AttributeError):
            continue
    return "?"


def command_check(args):
    import torch
    import atp_tiny_clip
    atp_tiny_clip.use_vocabulary(atp_tiny_clip.official_vocabulary_copy(args.vocab, args.work))
    model = atp_tiny_clip.check_state_dict(args.backbone)
    from clip import clip
    tokens = clip.tokenize("a photo of a T-shirt/top.")
    vocab = len(clip._tokenizer.encoder)
    rows = model.token_embedding.weight.shape[0]
    if vocab != rows:
        fail(f"{args.vocab}: {vocab} tokens, but {args.backbone} embeds {rows}")
    import atp_fashion_mnist  # noqa: F401  (imports Dassl and the official datasets package)
    import inspect
    from dassl.engine.trainer import SimpleTrainer
    if "is_final" not in inspect.signature(SimpleTrainer.test).parameters:
        fail(f"--dassl {args.dassl}: its trainer's test() has no is_final argument, which ATPrompt's train.py "
             f"passes with --eval-only; use the Dassl.pytorch folder of the ATPrompt checkout (its INSTALL.md "
             f"installs that copy)")
    print(f"check: official CLIP built from {args.backbone} (strict), vocabulary {vocab} tokens, "
          f"'a photo of a T-shirt/top.' -> {int((tokens != 0).sum())} tokens; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, BLAS {blas_core()}")


def command_tokens(args):
    import atp_tiny_clip
    atp_tiny_clip.use_vocabulary(atp_tiny_clip.official_vocabulary_copy(args.vocab, args.work))
    from clip import clip
    for line in sys.stdin.read().splitlines():
        print(" ".join(str(int(t)) for t in clip.tokenize(line)[0]))


def command_train(args, rest):
    import torch
    import atp_tiny_clip
    atp_tiny_clip.use_vocabulary(atp_tiny_clip.official_vocabulary_copy(args.vocab, args.work))
    atp_tiny_clip.register(args.backbone)
    import atp_fashion_mnist  # noqa: F401  (registers AtpFashionMNIST)
    print(f"[official] torch {torch.__version__}, {torch.get_num_threads()} threads, BLAS {blas_core()}", flush=True)
    train_py = os.path.join(os.path.abspath(args.atprompt), "train.py")
    sys.argv = [train_py] + rest
    runpy.run_path(train_py, run_name="__main__")


def command_step(args):
    """One CoOp+ATPrompt step as the official CoOp_ATP trainer takes it: CustomCLIP forward on the
    batch (image tower included: the official trainer has no feature cache), cross-entropy,
    Dassl's zero_grad/backward/step on the prompt learner's SGD (build_optimizer)."""
    import torch
    import torch.nn.functional as F
    from dassl.config import get_cfg_default
    from dassl.optim import build_optimizer
    sys.argv = [sys.argv[0]]
    import train as official_train  # its extend_cfg and attribute choice; imports every trainer
    from clip.model import CLIP
    import trainers.coop_atp as coop_atp

    cfg = get_cfg_default()
    official_train.extend_cfg(cfg)
    cfg.merge_from_file(os.path.join(os.path.abspath(args.atprompt), "configs/trainers/CoOp/vit_b16.yaml"))
    cfg.merge_from_list(["DATASET.NAME", "Caltech101", "TRAINER.NAME", "CoOp_ATP", "TRAINER.COOP.N_CTX", 2,
                         "TRAINER.COOP.PREC", "fp32", "TRAINER.ATPROMPT.USE_ATPROMPT", True,
                         "TRAINER.ATPROMPT.N_ATT1", 2, "TRAINER.ATPROMPT.N_ATT2", 2, "TRAINER.ATPROMPT.N_ATT3", 2])
    official_train.choose_attribute_for_atprompt(cfg)  # Caltech101: shape, size (as atp_bench_methods)
    # atp_bench_methods' 50 class names.
    words = ["airplane", "bonsai", "camera", "dolphin", "elephant", "ferry", "guitar", "helicopter", "ibis",
             "joshua tree", "kangaroo", "lamp", "mandolin", "nautilus", "octopus", "pagoda", "pizza", "revolver",
             "rhino", "scissors", "snoopy", "stapler", "starfish", "sunflower", "tick"]
    names = [words[i % 25] + (" toy" if i >= 25 else "") for i in range(50)]
    torch.manual_seed(0)
    design = {"trainer": "CoOp", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0}
    # ViT-B/16's sizes, weights from CLIP's own initialisation (the step's cost does not depend on them).
    clip_model = CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12, design).float().eval()
    model = coop_atp.CustomCLIP(cfg, names, clip_model)
    for name, param in model.named_parameters():
        if "prompt_learner" not in name:
            param.requires_grad_(False)
    optim = build_optimizer(model.prompt_learner, cfg.OPTIM)
    images = torch.randn(32, 3, 224, 224)
    labels = torch.randint(0, 50, (32,))

    def step():
        loss = F.cross_entropy(model(images), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()

    print(f"[official step] CoOp_ATP CustomCLIP, ViT-B/16 random weights, batch 32, 50 classes, fp32, "
          f"attributes {cfg.TRAINER.ATPROMPT.ATT1_TEXT}, {cfg.TRAINER.ATPROMPT.ATT2_TEXT}, n_ctx 2; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, BLAS {blas_core()}", flush=True)
    t0 = time.perf_counter()
    step()  # warm-up: allocations, first touch (atp_bench_methods also warms up before timing)
    print(f"[official step] warm-up step: {time.perf_counter() - t0:.3f} s", flush=True)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(f"official_step_seconds {sum(times) / len(times):.3f} (mean of {len(times)}: "
          f"{', '.join(f'{t:.3f}' for t in times)})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atprompt", required=True, help="checkout of zhengli97/ATPrompt")
    parser.add_argument("--dassl", required=True, help="checkout of KaiyangZhou/Dassl.pytorch")
    parser.add_argument("--yacs", default="", help="checkout of rbgirshick/yacs (when yacs is not installed)")
    parser.add_argument("--work", required=True, help="scratch folder (shims)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    parser.add_argument("--backbone", default="", help="atp's tiny_clip.pt")
    parser.add_argument("--vocab", default="", help="atp's tiny_clip_vocab.txt.gz")
    parser.add_argument("--steps", type=int, default=2, help="step: timed steps after one warm-up step")
    parser.add_argument("command", choices=["check", "train", "step", "tokens"])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="train: the arguments of train.py, after --")
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.command in ("check", "train", "tokens") and not (args.backbone and args.vocab):
        fail(f"{args.command} needs --backbone and --vocab (atp's tiny CLIP)")
    setup_paths(args)
    used = install_shims(args.work)
    if used:
        print(f"[official] stand-ins for packages Debian does not ship: {', '.join(used)} "
              f"(bench/official/shims/)", file=sys.stderr, flush=True)
    import torch
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.command == "check":
        command_check(args)
    elif args.command == "tokens":
        command_tokens(args)
    elif args.command == "train":
        command_train(args, rest)
    else:
        command_step(args)


if __name__ == "__main__":
    main()
