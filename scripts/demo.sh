#!/usr/bin/env bash
# Installs what is missing, builds engine and runs the cart_join demo (the
# tutorial's shopping-cart join on data/cart-join.json with 4 workers).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target engine_cli
./build/engine run cart_join -w 4
