#!/usr/bin/env bash
# Installs atp's build and test dependencies from Debian 12's packages (skipped when all are
# present). Needs root, or sudo. Why each one is needed: README.md, "Dependencies".
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread          # CLIP and training (CPU libtorch); a fast BLAS for it
  libopenmpi-dev openmpi-bin                 # coordinator/worker transport, CPU gradient averaging
  libsqlite3-dev sqlite3                     # results database (and its shell, for users and tests)
  libtomlplusplus-dev                        # sweep files
  nlohmann-json3-dev libssl-dev              # JSON specs/messages; SHA-256 job keys (libcrypto)
  libboost-dev                               # Boost.Asio status server
  libcli11-dev                               # command-line flags of every atp command
  libgtest-dev libgmock-dev                  # unit tests
  libjpeg62-turbo-dev libpng-dev zlib1g-dev  # image decoding, gzip'd BPE vocabulary
  libicu-dev                                 # Unicode classes and case mapping of the CLIP tokenizer
  dataset-fashion-mnist                      # the real dataset the demo and tests use
  curl netcat-openbsd tmux chromium          # system tests: HTTP, raw sockets, terminal, browser
  python3-torch                              # tests: PyTorch's own schedulers and torch.load as references
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all Debian packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install_deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# libtorch calls whichever libblas.so.3 is selected; make it OpenBLAS (the reference BLAS is
# an order of magnitude slower).
openblas=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas-pthread | head -1 || true)
[ -n "$openblas" ] && $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" || true
