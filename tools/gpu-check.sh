#!/usr/bin/env bash
# The whole check on a machine with a GPU, in one go: build the solutions track for the
# GPU at hand, run the suites (solutions must pass, stubs must fail), the sanitizers and
# the chapter tour; full logs in $OUT (default ./gpu-logs), a summary last.
#
#   tools/gpu-check.sh [LABEL_REGEX]      e.g. tools/gpu-check.sh '01|02'  (default: all)
#   CUDA_ARCH=90 SKIP_SANITIZE=1 SKIP_TOUR=1 ... to narrow it down (the tour, unnarrowed, ends
#   with tools/access_patterns)
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
labels=${1:-.}
arch=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
build=build/gpu-$arch

summary=()
note() { summary+=("$1"); echo "== $1"; }

nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
echo "cmake $(cmake --version | head -1 | cut -d' ' -f3), nvcc $(nvcc --version | tail -1)"

t0=$SECONDS
cmake -S . -B "$build" -G Ninja -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCOURSE_TRACK=solutions \
  > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" > "$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
note "build (sm_$arch): $((SECONDS - t0)) s, $(grep -c 'warning' "$out/build.log") warning lines"

# The suites and the stubs check (label stubs: every stub case must fail).
t0=$SECONDS
ctest --test-dir "$build" -L "$labels" -LE "tour|sanitize" --output-on-failure > "$out/test.log" 2>&1
note "tests: $(grep -E 'tests passed' "$out/test.log") ($((SECONDS - t0)) s)"
grep -E "\(Failed\)|\(Skipped\)|Not Run|Timeout" "$out/test.log" | head -20
caught=$(grep -cE "known-bad\..* Passed" "$out/test.log")
total=$(grep -cE "known-bad\..* (Passed|Failed|\*\*\*)" "$out/test.log")
note "known-bad kernels caught: $caught of $total"
grep -E "known-bad\..*Failed" "$out/test.log" | head
for stubs in "$build"/bin/test_ch*_stubs; do
  "$stubs" --test-case='gpu:*,cpu:*' > "$out/$(basename "$stubs").log" 2>&1
  note "$(basename "$stubs"): $(grep -E '^\[doctest\] test cases' "$out/$(basename "$stubs").log")"
done

if [ -z "${SKIP_SANITIZE:-}" ]; then
  t0=$SECONDS
  ctest --test-dir "$build" -L sanitize -L "$labels" -j 4 --output-on-failure > "$out/sanitize.log" 2>&1
  note "sanitize: $(grep -E 'tests passed' "$out/sanitize.log") ($((SECONDS - t0)) s)"
  grep -E "\(Failed\)|Timeout|ERROR SUMMARY: [1-9]" "$out/sanitize.log" | head -20
fi

if [ -z "${SKIP_TOUR:-}" ]; then
  for exe in "$build"/bin/ch[0-9]*; do
    name=$(basename "$exe")
    [[ "${name:2:2}" =~ $labels ]] || [ "$labels" = . ] || continue
    t0=$SECONDS
    "$exe" > "$out/$name.log" 2>&1
    rc=$?
    note "$name: exit $rc ($((SECONDS - t0)) s)"
  done
  # The ceilings of the access patterns the chapters quote (tools/PERF-NOTES.md).
  if [ "$labels" = . ]; then
    t0=$SECONDS
    "$build"/bin/access_patterns > "$out/access_patterns.log" 2>&1
    note "access_patterns: exit $? ($((SECONDS - t0)) s)"
  fi
fi

echo
echo "================ summary ================"
printf '%s\n' "${summary[@]}"
for exe in "$build"/bin/ch[0-9]*; do
  name=$(basename "$exe")
  [ -f "$out/$name.log" ] && { echo; echo "--- $name"; sed -n '/^kernel/,$p' "$out/$name.log"; }
done
if [ -f "$out/access_patterns.log" ]; then
  echo; echo "--- access_patterns"; sed -n '/^chapter/,$p' "$out/access_patterns.log"
fi
