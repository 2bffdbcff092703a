#!/usr/bin/env bash
# Gradescope image build (Ubuntu 22.04, as root, once per image). It does not use the image's own
# Python (3.10; Ubuntu's python3.11 package is a 3.11.0 pre-release): it installs an exact, final
# CPython of the course's range (3.11.2 to 3.13) where the sandbox uid can read it, the course's
# pinned environment with CPU-only torch (Gradescope has no GPU), and the course data, checked
# against data.sha256. It ends by checking the interpreter and that torch imports.
#
# For a test outside Gradescope: AUTOGRADER_ROOT (default /autograder); PYTHON=/path/to/python uses
# that interpreter instead of downloading one; SKIP_PIP=1 installs no packages (an existing
# $AUTOGRADER_ROOT/venv is then used as it is); COURSEKIT_PREFIX (default /opt/coursekit).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"
VENV="$ROOT/venv"
PREFIX="${COURSEKIT_PREFIX:-/opt/coursekit}"     # world-readable: not /root, not the 0700 $SRC
PYTHON_VERSION=3.11.7                            # as the course's CI `make test` runs
UV_VERSION=0.13.9                                # as the Makefile's (make lock)
CPU_INDEX=https://download.pytorch.org/whl/cpu
SKIP_PIP="${SKIP_PIP:-0}"
WHEELS="$PREFIX/wheels"

fail() {
  echo "setup.sh: $*" >&2
  exit 1
}

# The one step that downloads from outside the package registries (PyPI, Ubuntu's apt), and so the
# one step CI cannot run (autograder/README.md): CPython $PYTHON_VERSION as a python-build-standalone
# build installed by uv (uv itself from PyPI), unless PYTHON names an interpreter; and the CPU builds
# of torch and torchvision, at the lock's versions, from the PyTorch CPU index into $WHEELS.
fetch_outside_registries() {
  if [ -z "${PYTHON:-}" ]; then
    export UV_PYTHON_INSTALL_DIR="$PREFIX/python"
    python3 -m pip install --quiet --disable-pip-version-check --target "$PREFIX/uv" "uv==$UV_VERSION" \
      || fail "could not install uv $UV_VERSION from PyPI with the image's python3 -m pip"
    "$PREFIX/uv/bin/uv" python install --no-bin "$PYTHON_VERSION" \
      || fail "could not install CPython $PYTHON_VERSION with uv (python-build-standalone, from GitHub)"
    PYTHON=$("$PREFIX/uv/bin/uv" python find --managed-python --no-project "$PYTHON_VERSION") \
      || fail "uv installed CPython $PYTHON_VERSION but cannot find it in $PREFIX/python"
  fi
  check_python "$PYTHON"                       # before downloading anything for it
  if [ "$SKIP_PIP" != 1 ]; then
    local torch torchvision tmp
    torch=$(pinned torch) torchvision=$(pinned torchvision)
    tmp=$(mktemp -d)
    rm -rf "$WHEELS"
    "$PYTHON" -m venv "$tmp/pip"
    "$tmp/pip/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --index-url "$CPU_INDEX" --dest "$WHEELS" "torch==$torch+cpu" "torchvision==$torchvision+cpu" \
      || fail "could not download torch $torch+cpu and torchvision $torchvision+cpu from $CPU_INDEX"
    rm -rf "$tmp"
  fi
}

# The exact version of a package in the lock (requirements.txt: `name==v` or `name===v`).
pinned() {
  local version
  version=$(sed -n -E "s/^$1===?([^ ;]+).*/\\1/p" "$SRC/requirements.txt" | head -n 1)
  [ -n "$version" ] || fail "$1 is not pinned in $SRC/requirements.txt"
  echo "$version"
}

# The lock without what the CPU wheels replace or do not need: torch and torchvision (installed
# from $WHEELS), the CUDA libraries and triton.
cpu_lock() {
  grep -v -E '^(torch|torchvision|triton|nvidia-[A-Za-z0-9_.-]+|cuda-[A-Za-z0-9_.-]+)[=;[:space:]]' "$SRC/requirements.txt"
}

# A final CPython of the course's range (coursekit/pyversion.py, shipped in the zip), or stop.
check_python() {
  local why
  why=$("$1" "$SRC/kit/coursekit/pyversion.py" "set PYTHON_VERSION in setup.sh to a final release in the range" 2>&1) \
    || fail "the interpreter cannot build the course's environment: $why"
}

[ -f "$SRC/requirements.txt" ] && [ -f "$SRC/kit/coursekit/pyversion.py" ] \
  || fail "$SRC has no requirements.txt or kit/coursekit/pyversion.py: unzip the autograder zip there"
mkdir -p "$PREFIX"
if { [ -z "${PYTHON:-}" ] && ! python3 -m pip --version >/dev/null 2>&1; } || ! command -v curl >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive        # Ubuntu's packages: pip (to install uv), curl (data)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-pip ca-certificates curl >/dev/null
fi
fetch_outside_registries

if [ "$SKIP_PIP" != 1 ]; then
  "$PYTHON" -m venv --clear "$VENV"
  cpu_lock > "$PREFIX/requirements-cpu.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    -r "$PREFIX/requirements-cpu.txt" "$WHEELS"/torch-*.whl "$WHEELS"/torchvision-*.whl
  "$VENV/bin/python" -m pip check
elif [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi

# The course data: staged in the zip, or downloaded now; either way checked against data.sha256.
mkdir -p "$ROOT/data"
while read -r _ file; do
  mkdir -p "$ROOT/data/$(dirname "$file")"
  if [ -f "$SRC/data/$file" ]; then
    cp "$SRC/data/$file" "$ROOT/data/$file"
  else
    url=$(grep -F " $file " "$SRC/data.urls" | cut -d' ' -f3 || true)
    if [ -z "$url" ]; then
      fail "$file is neither in the zip nor listed in data.urls"
    fi
    curl --fail --location --silent --show-error --output "$ROOT/data/$file" "$url"
  fi
done < "$SRC/data.sha256"
(cd "$ROOT/data" && sha256sum --check --quiet "$SRC/data.sha256") \
  || fail "the course data does not match data.sha256 (above: which file)"

# The sandbox uid reads the interpreter, the venv and the data, and writes none of them.
chmod a+x "$ROOT"
chmod -R a+rX,go-w "$PREFIX" "$ROOT/data"
[ "$SKIP_PIP" = 1 ] || chmod -R a+rX,go-w "$VENV"

# The end: the venv's interpreter is a final release in the range, and torch imports.
check_python "$VENV/bin/python"
"$VENV/bin/python" -c "import torch, torchvision; print('setup.sh: Python', __import__('platform').python_version(), '· torch', torch.__version__, '· torchvision', torchvision.__version__)" \
  || fail "torch does not import in $VENV (the error above); rerun setup.sh without SKIP_PIP"
# Student code never reads the hidden tests: the source is the grader's alone.
chmod -R go-rwx "$SRC"
