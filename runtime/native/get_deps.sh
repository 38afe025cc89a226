#!/usr/bin/env bash
# Install what `tvrun-native` builds against, from Debian's packages only:
#   OpenCV (core, imgproc, imgcodecs, videoio, highgui) and nlohmann/json   apt-get install (root)
#   ONNX Runtime's C/C++ headers                                            libonnxruntime-dev
# The ONNX Runtime *library* is the one inside the `onnxruntime` wheel (CMake finds it through
# TASKVEC_PYTHON). Where this Debian release has no libonnxruntime-dev (bookworm), its headers are
# taken from the next release's package, unpacked (not installed) into build/deps/.
# Usage: runtime/native/get_deps.sh [BUILD_DIR]   (default build). Prints what it did; a part it
# cannot get is reported and left to CMake, which then builds without it.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
mkdir -p "$BUILD/deps"
DEPS=$(cd "$BUILD/deps" && pwd)
APT_PKGS="cmake g++ pkg-config libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev libopencv-highgui-dev nlohmann-json3-dev"

have_pkgs() { dpkg -s $APT_PKGS >/dev/null 2>&1; }
if have_pkgs; then
  echo "get_deps: OpenCV and nlohmann/json packages already installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "get_deps: apt-get install $APT_PKGS"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PKGS) \
    >"$DEPS/apt.log" 2>&1 || echo "get_deps: apt-get install failed (see $DEPS/apt.log)"
else
  echo "get_deps: not root or no apt-get: install $APT_PKGS yourself"
fi

if [ -f /usr/include/onnxruntime/onnxruntime_cxx_api.h ] || [ -f "$DEPS/usr/include/onnxruntime/onnxruntime_cxx_api.h" ]; then
  echo "get_deps: ONNX Runtime headers present"
  exit 0
fi
if apt-cache policy libonnxruntime-dev 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  if [ "$(id -u)" = 0 ]; then
    echo "get_deps: apt-get install libonnxruntime-dev (headers; the library comes from the wheel or this package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libonnxruntime-dev >>"$DEPS/apt.log" 2>&1 \
      && exit 0
  fi
fi
# headers only, from a Debian release that packages them, into build/deps (nothing installed)
REL=${TASKVEC_ORT_DEBIAN_RELEASE:-trixie}
LISTS="$DEPS/apt-$REL"
mkdir -p "$LISTS/lists/partial" "$LISTS/cache/archives/partial"
echo "deb http://deb.debian.org/debian $REL main" >"$LISTS/sources.list"
O=(-o "Dir::Etc::SourceList=$LISTS/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$LISTS/lists" -o "Dir::Cache=$LISTS/cache" -o APT::Sandbox::User=root)
if apt-get "${O[@]}" -qq update >>"$DEPS/apt.log" 2>&1 \
   && (cd "$DEPS" && apt-get "${O[@]}" -qq download libonnxruntime-dev >>"$DEPS/apt.log" 2>&1); then
  deb=$(ls "$DEPS"/libonnxruntime-dev_*.deb | head -1)
  dpkg-deb -x "$deb" "$DEPS" && echo "get_deps: ONNX Runtime headers from $(basename "$deb") in $DEPS/usr/include/onnxruntime"
else
  echo "get_deps: could not fetch libonnxruntime-dev from Debian $REL (see $DEPS/apt.log): the ONNX Runtime backend is left out"
fi
exit 0
