#!/usr/bin/env bash
# Benchmarks: `run` of a busybox bundle executing /bin/true, with this project's runtime
# (isorun, release build, linked as one static executable), runc, crun and gVisor's runsc,
# side by side in one run; then each one's peak memory. A benchmark, not a test: it prints figures and
# asserts nothing.
#
# Why a static executable: a container costs isorun two program starts (the runtime, and
# the init it re-executes). Dynamically linked (PIE), each start spent about 2.5 ms loading
# libstdc++ and friends and applying 42,000 relocations, which copy-on-write most data
# pages; static and not position-independent it needs none of that (a failing `state`:
# 4.2 ms → 1.5 ms). The price: the executable's own addresses are not randomized (ASLR
# still covers the stack, heap and mmap). Chapter 04's notes ("Speed") have the details.
#
#   sudo bash Benchmarks/run.sh            # needs root; installs runc crun runsc hyperfine if missing
#   RUNS=50 ROUNDS=5 sudo bash Benchmarks/run.sh
#
# Fairness:
# - one bundle, one config.json (runc spec, args /bin/true, terminal off), the same
#   read-only root filesystem (the built-in busybox one) for all three;
# - the rounds interleave the runtimes (isorun, runc, crun, isorun, …) so that a noisy
#   moment of the machine is shared, and the medians of all rounds are compared;
# - crun 1.8 refuses "hybrid" cgroup hosts (v1 controllers plus a cgroup2 at
#   /sys/fs/cgroup/unified). On such a host crun runs in a private mount namespace without
#   that cgroup2 mount (unshare -m), which costs each crun run one unshare(1) and one
#   umount(8): that overhead is measured and reported too;
# - runsc (gVisor) is another kind of runtime: a user-space kernel (the Sentry) answers
#   the container's system calls. It runs with --platform=ptrace (it needs no KVM; the
#   KVM platform is faster where /dev/kvm works) and --network=none (the bundle has no
#   network). Its start includes booting that kernel, so expect it an order of magnitude
#   slower; its column is skipped when runsc cannot be installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-3}
[ "$(id -u)" -eq 0 ] || { echo "run it as root: sudo bash $0" >&2; exit 1; }

need=()
for tool in runc crun hyperfine; do command -v "$tool" > /dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" > /dev/null
fi
command -v runsc > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc > /dev/null 2>&1 \
    || echo "runsc could not be installed (apt-get install runsc): its column is left out" >&2

echo "building isorun (release, one static executable)…" >&2
swift build -c release --product isorun -Xswiftc -static-executable > /dev/null
swift build --product chapter-01 > /dev/null   # the built-in root filesystem comes from here
ISORUN=$(swift build -c release --show-bin-path)/isorun
ROOTFS=$(pwd)/.build/isolation/rootfs-busybox
[ -d "$ROOTFS" ] || "$(swift build --show-bin-path)/chapter-01" -- true > /dev/null

WORK=$(mktemp -d /tmp/isolation-bench-XXXXXX)
cleanup() {
    for r in isorun runc crun runsc; do
        for id in $(ls "$WORK/state-$r" 2>/dev/null); do
            case $r in
                isorun) "$ISORUN" --root "$WORK/state-$r" delete --force "$id" ;;
                *) "$r" --root "$WORK/state-$r" delete --force "$id" ;;
            esac > /dev/null 2>&1 || true
        done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/bundle"
(cd "$WORK/bundle" && runc spec)
python3 - "$WORK/bundle/config.json" "$ROOTFS" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["root"] = {"path": rootfs, "readonly": True}
config["process"]["args"] = ["/bin/true"]
config["process"]["terminal"] = False
json.dump(config, open(path, "w"), indent=2)
PY

CRUN="crun --root $WORK/state-crun run --bundle $WORK/bundle bench-crun"
if [ -e /sys/fs/cgroup/unified/cgroup.controllers ] && mountpoint -q /sys/fs/cgroup/unified; then
    CRUN="unshare -m sh -c 'umount /sys/fs/cgroup/unified && exec $CRUN'"
    CRUN_NOTE="crun ran inside 'unshare -m' + umount (a hybrid cgroup host); that wrapper alone:"
fi
commands=(
    "$ISORUN --root $WORK/state-isorun run --bundle $WORK/bundle bench-isorun"
    "runc --root $WORK/state-runc run --bundle $WORK/bundle bench-runc"
    "$CRUN"
)
names=(isorun runc crun)
if command -v runsc > /dev/null; then
    commands+=("runsc --root $WORK/state-runsc --platform=ptrace --network=none run --bundle $WORK/bundle bench-runsc")
    names+=(runsc)
fi

for round in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        hyperfine --shell=bash --warmup 2 --runs "$RUNS" --export-json "$WORK/round-$round-${names[$i]}.json" \
            --command-name "${names[$i]}" "${commands[$i]}" > /dev/null
    done
done
if [ -n "${CRUN_NOTE:-}" ]; then
    hyperfine --shell=bash --warmup 2 --runs "$RUNS" --export-json "$WORK/wrapper.json" \
        "unshare -m sh -c 'umount /sys/fs/cgroup/unified && exec true'" > /dev/null
fi

python3 - "$WORK" "$ROUNDS" "${CRUN_NOTE:-}" "${names[@]}" <<'PY'
import json, statistics, sys, glob, os
work, rounds, note, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
times = {}
for name in names:
    samples = []
    for path in glob.glob(os.path.join(work, f"round-*-{name}.json")):
        samples += json.load(open(path))["results"][0]["times"]
    times[name] = samples
median = {name: statistics.median(t) * 1000 for name, t in times.items()}
print(f"run of a busybox bundle executing /bin/true, {len(times['isorun'])} runs each, {rounds} interleaved rounds")
print(f"{'runtime':8} {'median':>10} {'mean':>10} {'stddev':>10}  vs isorun")
for name, samples in times.items():
    ms = [s * 1000 for s in samples]
    print(f"{name:8} {median[name]:8.2f} ms {statistics.mean(ms):8.2f} ms {statistics.stdev(ms):8.2f} ms  {median[name] / median['isorun']:.2f}×")
if note:
    wrapper = statistics.median(json.load(open(os.path.join(work, "wrapper.json")))["results"][0]["times"]) * 1000
    print(f"{note} {wrapper:.2f} ms (crun without it: ≈ {median['crun'] - wrapper:.2f} ms)")
PY

echo
echo "peak memory (maximum resident set size of the runtime process that ran the container;"
echo "for runsc, of its largest process: the sandbox kernel or the gofer):"
for i in "${!names[@]}"; do
    rss=$( { /usr/bin/env time -f "%M" bash -c "${commands[$i]}" > /dev/null; } 2>&1 | tail -1 )
    printf '%-8s %8s KiB\n' "${names[$i]}" "$rss"
done
