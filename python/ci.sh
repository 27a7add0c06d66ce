#!/usr/bin/env bash
# The Python package's CI: lint the extension crate, build and install the
# package into a cached venv, run its tests against torch.
#
# The venv lives outside the repo, keyed on requirements-ci.txt's hash:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/convlab-ci/venv-<hash>
# A cold one installs torch from PyPI (a few minutes); a warm one is reused.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)

python=${PYTHON:-python3}
key=$(sha256sum requirements-ci.txt | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/convlab-ci
venv=$cache/venv-$key
# A venv is used only once its install finished (an interrupted one is redone).
if [[ ! -e $venv/.complete ]]; then
  echo "python: creating $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-ci.txt
  touch "$venv/.complete"
fi

export PATH=$venv/bin:$PATH PYO3_PYTHON=$venv/bin/python
# Share the workspace's build directory: the library and its dependencies
# are already compiled there by the Rust steps.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/../target}
cargo fmt --manifest-path Cargo.toml -- --check
cargo clippy --manifest-path Cargo.toml --release -- -D warnings

# The documented install command, without build isolation (maturin comes
# from the cached venv, so nothing is downloaded).
"$venv/bin/python" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps .
cd tests
# From tests/, so `import convlab` is the installed package, not the source tree.
"$venv/bin/python" -m pytest -q -p no:cacheprovider .
