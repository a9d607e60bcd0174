#!/usr/bin/env bash
# Benchmarks, chapter 06: the image path, with release builds.
#
# 1. Unpacking a generated image of about 300 MB (uncompressed) in 3 gzip layers into a
#    bundle: `chapter-06 unpack` against `umoci unpack` (Debian's umoci), side by side in
#    interleaved hyperfine rounds, the target folder removed before every run (not timed).
# 2. The start of a container from the cached image: `chapter-06 run IMAGE -- /stamp`,
#    where /stamp is a static program whose first act is to print CLOCK_REALTIME. The
#    time from just before the run's execve(2) to that clock reading is the time to the
#    process's first instruction; the whole run's wall time (with the teardown) is shown
#    beside it.
#
# A benchmark, not a test: it prints figures and asserts nothing.
#
#   sudo bash Benchmarks/images.sh            # needs root; installs umoci hyperfine if missing
#   RUNS=5 ROUNDS=3 STARTS=40 sudo bash Benchmarks/images.sh
#   ROUNDS=0 sudo bash Benchmarks/images.sh   # only the start
#
# Fairness:
# - both unpack the same OCI layout (the same blobs) into a folder on the same file system;
# - both verify every blob's SHA-256 as they read it; umoci also writes an mtree manifest of
#   the tree it made (umoci.json, sha256_….mtree) and config.json; chapter-06 writes config.json;
# - chapter-06 keeps its store in the benchmark's folder (ISOLATION_CACHE_DIR): the image is
#   imported into it by the warm-up run, so the timed runs unpack from the store, as umoci
#   unpacks from the layout;
# - the rounds interleave the two programs so that a noisy moment of the machine is shared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-5}
ROUNDS=${ROUNDS:-3}
STARTS=${STARTS:-40}
[ "$(id -u)" -eq 0 ] || { echo "run it as root: sudo bash $0" >&2; exit 1; }

need=()
for tool in umoci hyperfine cc python3; do command -v "$tool" > /dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]/cc/gcc}" > /dev/null
fi

echo "building chapter-06 (release)…" >&2
swift build -c release --product chapter-06 > /dev/null
CHAPTER=$(swift build -c release --show-bin-path)/chapter-06
swift build --product chapter-01 > /dev/null   # the built-in root filesystem comes from here
ROOTFS=$(pwd)/.build/isolation/rootfs-busybox
[ -d "$ROOTFS" ] || "$(swift build --show-bin-path)/chapter-01" -- true > /dev/null

WORK=$(mktemp -d /var/tmp/isolation-bench-images-XXXXXX)
export ISOLATION_CACHE_DIR=$WORK/cache
cleanup() {
    set +e
    # A container root left mounted by an interrupted run, then everything.
    grep -o " $WORK/[^ ]*" /proc/self/mountinfo | sort -r | while read -r point; do umount -l "$point"; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The static stamp program, and the image: the busybox root filesystem plus 20,000 files of
# 4 KiB (layer 1), 100 files of 1 MiB and a whiteout (layer 2), 12 files of 10 MiB and
# /stamp (layer 3). Each file is half pseudo-random bytes, half text: gzip has real work.
cat > "$WORK/stamp.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("%lld%09ld\n", (long long)now.tv_sec, now.tv_nsec);
    return 0;
}
C
cc -O2 -static -o "$WORK/stamp" "$WORK/stamp.c"

echo "generating the image (3 layers, about 300 MB)…" >&2
python3 - "$WORK" "$ROOTFS" <<'PY'
import gzip, hashlib, io, json, os, random, shutil, sys, tarfile
work, rootfs = sys.argv[1], sys.argv[2]
layout = os.path.join(work, "layout")
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)
rng = random.Random(2026)
text = (b"The quick brown fox jumps over the lazy dog. " * 1000)

def content(size):
    half = size // 2
    return rng.randbytes(half) + (text * (size // len(text) + 1))[: size - half]

def add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    tar.addfile(info, io.BytesIO(data))

def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
    tar.addfile(info)

def blob(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    size = os.path.getsize(path)
    target = os.path.join(blobs, digest.hexdigest())
    os.replace(path, target)
    return {"digest": "sha256:" + digest.hexdigest(), "size": size}

def layer(n, fill):
    tar_path = os.path.join(work, f"layer{n}.tar")
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        fill(tar)
    diff = hashlib.sha256()
    with open(tar_path, "rb") as src, gzip.GzipFile(tar_path + ".gz", "wb", compresslevel=6, mtime=0) as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            diff.update(chunk)
            dst.write(chunk)
    os.remove(tar_path)
    descriptor = blob(tar_path + ".gz")
    descriptor["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    return descriptor, "sha256:" + diff.hexdigest()

def layer1(tar):
    for name in sorted(os.listdir(rootfs)):
        tar.add(os.path.join(rootfs, name), arcname=name)
    for d in ["usr/share/bench"] + [f"usr/share/bench/{i:02d}" for i in range(20)]:
        add_dir(tar, d)
    for i in range(20_000):
        add_bytes(tar, f"usr/share/bench/{i % 20:02d}/file{i:05d}", content(4096))

def layer2(tar):
    add_dir(tar, "opt"); add_dir(tar, "opt/bench"); add_dir(tar, "opt/bench/medium")
    for i in range(100):
        add_bytes(tar, f"opt/bench/medium/{i:03d}", content(1 << 20))
    add_dir(tar, "usr"); add_dir(tar, "usr/share"); add_dir(tar, "usr/share/bench")
    add_bytes(tar, "usr/share/bench/.wh.19", b"")

def layer3(tar):
    add_dir(tar, "opt"); add_dir(tar, "opt/bench"); add_dir(tar, "opt/bench/big")
    for i in range(12):
        add_bytes(tar, f"opt/bench/big/{i:02d}", content(10 << 20))
    with open(os.path.join(work, "stamp"), "rb") as f:
        add_bytes(tar, "stamp", f.read(), mode=0o755)

layers, diffs = zip(*(layer(n, f) for n, f in [(1, layer1), (2, layer2), (3, layer3)]))
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/stamp"], "Env": ["PATH=/bin:/usr/bin"]},
          "rootfs": {"type": "layers", "diff_ids": list(diffs)}}
with open(os.path.join(work, "config.json"), "wb") as f:
    f.write(json.dumps(config, sort_keys=True).encode())
config_descriptor = blob(os.path.join(work, "config.json"))
config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_descriptor, "layers": list(layers)}
with open(os.path.join(work, "manifest.json"), "wb") as f:
    f.write(json.dumps(manifest, sort_keys=True).encode())
manifest_descriptor = blob(os.path.join(work, "manifest.json"))
manifest_descriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
manifest_descriptor["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
with open(os.path.join(layout, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [manifest_descriptor]}, f)
compressed = sum(l["size"] for l in layers)
print(f"image: 3 layers, {compressed / 1e6:.0f} MB compressed", file=sys.stderr)
PY
du -sh "$WORK/layout" >&2

IMAGE="oci:$WORK/layout:latest"
OURS="$CHAPTER unpack $IMAGE $WORK/ours > /dev/null"
UMOCI="umoci unpack --image $WORK/layout:latest $WORK/umoci > /dev/null"
# The first run imports the image into chapter-06's store; then both trees are compared once.
$CHAPTER unpack "$IMAGE" "$WORK/ours" > /dev/null
umoci unpack --image "$WORK/layout:latest" "$WORK/umoci" > /dev/null
echo "unpacked size: $(du -sm "$WORK/ours/rootfs" | cut -f1) MB (ours), $(du -sm "$WORK/umoci/rootfs" | cut -f1) MB (umoci);" \
     "trees differ in $(diff -r --no-dereference "$WORK/ours/rootfs" "$WORK/umoci/rootfs" 2>&1 | wc -l) places" >&2

for round in $(seq "$ROUNDS"); do
    hyperfine --shell=bash --runs "$RUNS" --prepare "rm -rf $WORK/ours" --export-json "$WORK/unpack-$round-ours.json" \
        --command-name chapter-06 "$OURS" > /dev/null
    hyperfine --shell=bash --runs "$RUNS" --prepare "rm -rf $WORK/umoci" --export-json "$WORK/unpack-$round-umoci.json" \
        --command-name umoci "$UMOCI" > /dev/null
done
rm -rf "$WORK/ours" "$WORK/umoci"

# The start: the image is named in the store now; its layers are unpacked by a first run.
STORED=$($CHAPTER images | awk 'NR > 1 { print $NF; exit }')
$CHAPTER run "$STORED" > /dev/null
python3 - "$WORK" "$ROUNDS" "$CHAPTER" "$STORED" "$STARTS" <<'PY'
import glob, json, os, statistics, subprocess, sys, time
work, rounds, chapter, image, starts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def samples(name):
    values = []
    for path in glob.glob(os.path.join(work, f"unpack-*-{name}.json")):
        values += json.load(open(path))["results"][0]["times"]
    return values
if rounds > 0:
    print(f"unpack of a 3-layer image (~300 MB unpacked), {len(samples('ours'))} runs each, {rounds} interleaved rounds")
    print(f"{'program':12} {'median':>9} {'mean':>9} {'stddev':>9}  vs chapter-06")
    ours = statistics.median(samples("ours"))
    for name, label in [("ours", "chapter-06"), ("umoci", "umoci")]:
        s = samples(name)
        print(f"{label:12} {statistics.median(s):7.2f} s {statistics.mean(s):7.2f} s {statistics.stdev(s):7.2f} s  {statistics.median(s) / ours:.2f}×")

first, whole = [], []
for _ in range(starts):
    start = time.time_ns()
    result = subprocess.run([chapter, "run", image, "--", "/stamp"], capture_output=True, text=True)
    end = time.time_ns()
    if result.returncode != 0:
        sys.exit(f"chapter-06 run failed: {result.stderr}")
    first.append((int(result.stdout.strip()) - start) / 1e6)
    whole.append((end - start) / 1e6)
print()
print(f"chapter-06 run IMAGE -- /stamp, image cached, {starts} runs")
print(f"  to the process's first instruction: median {statistics.median(first):6.1f} ms  (min {min(first):.1f}, max {max(first):.1f})")
print(f"  the whole run, with the teardown:   median {statistics.median(whole):6.1f} ms  (min {min(whole):.1f}, max {max(whole):.1f})")
PY
echo
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r), store on $(stat -f -c %T "$WORK")"
