#!/usr/bin/env bash
# ci/layers.sh: the folders are the layers (docs/DESIGN.md "Layers"); check
# what the include paths alone cannot:
#  1. a folder's internal headers (*_int.h, codec_wire.h, tcp_uring.h) are
#     included only from inside that folder (its subfolders count) or by
#     the tests (white-box by design: they inject malformed messages);
#  2. the agent core (agent/*.c, agent/*.h) names no feature: no feature
#     header, no rxp__rref_* / rxp__prof_* symbol; features plug in through
#     agent/feature.h.
# (That a lower layer cannot include a higher one's header at all is proved
# by the compiler: see the layer_probe tests in tests/unit/layers.cmake.)
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
fail() { echo "layers: $*"; bad=1; }

mapfile -t srcs < <(git ls-files '*.c' '*.h' '*.cc' | grep -v '^tests/fuzz/corpus/')
mapfile -t internal < <(git ls-files '*_int.h' codec/codec_wire.h transport/tcp/tcp_uring.h |
	grep -v '^tests/')

for h in "${internal[@]}"; do
	dir=$(dirname "$h")
	base=$(basename "$h")
	for f in "${srcs[@]}"; do
		case "$f" in "$dir"/*|tests/*) continue ;; esac
		if grep -qE "^#[[:space:]]*include[[:space:]]+\"([^\"]*/)?$base\"" "$f"; then
			fail "$f includes $h, internal to $dir/"
		fi
	done
done

for f in agent/*.c agent/*.h; do
	if grep -nE '#[[:space:]]*include[[:space:]]+"(rref|rref_int|profiler)\.h"|\brxp__(rref|rrefs|prof)_[a-z_]*\(' "$f"; then
		fail "$f (the agent core) names a feature; register a hook in agent/feature.h"
	fi
done

[ $bad = 0 ] && echo "layers: ok (${#internal[@]} internal headers, ${#srcs[@]} files)"
exit $bad
