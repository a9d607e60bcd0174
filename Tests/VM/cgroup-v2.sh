#!/usr/bin/env bash
# The cgroup v2 test lane: boots a small VM whose /sys/fs/cgroup is cgroup2 with every
# controller enabled, and runs the cgroup test suites there ("cgroup enforcement" and
# "Limits as people write them", Tests/IsolationTests/CgroupTests.swift), as root.
#
# Why a VM: a host on cgroup v1 (or hybrid) cannot give a process a pure cgroup2
# /sys/fs/cgroup with the cpu, memory and pids controllers on it (they are bound to
# the v1 hierarchies), so `Cgroup`'s v2 backend would never run for real.
#
# How: Debian's own kernel (downloaded with apt-get, never installed) boots under
# qemu with an initramfs made of busybox-static, the virtio/9p modules and
# Tests/VM/guest-init.sh. The host's / is shared read-only over 9p, so the guest runs
# the host-built test bundle, the host's Swift runtime and /bin/sh, head, tr, ...
#
# The kernel also runs x32 system calls (syscall.x32=y; Debian's default is off), which
# the host may not: the seccomp suite's x32 rows are answered by the kernel there.
#
# Usage, from the package root, after `swift build --build-tests`:
#     bash Tests/VM/cgroup-v2.sh
# Environment:
#     ISOLATION_VM_BUNDLE       the .xctest bundle (default: from `swift build --show-bin-path`)
#     ISOLATION_VM_BUILD_FLAGS  extra `swift build` flags, e.g. "--scratch-path .build-vm"
#     ISOLATION_VM_CACHE        kernel/initramfs cache (default: .build/isolation-vm)
#     ISOLATION_VM_ACCEL        kvm or tcg (default: kvm if a short probe boot works)
#     ISOLATION_VM_TIMEOUT      seconds the test VM may run (default: 1800: under TCG each process start is slow)
#     ISOLATION_VM_FILTER       Swift Testing --filter (default: the two cgroup suites)
# Exit status: the tests' (0 also when the lane is skipped because qemu cannot run here).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PACKAGE_ROOT=$(pwd)

# Messages go to fd 3, our stderr: a trap that runs inside `{ wait; } 2> /dev/null`
# (Ctrl-C while the VM runs) must still be heard.
exec 3>&2
say() { printf '[cgroup-v2 lane] %s\n' "$*" >&3; }
die() { say "FAILED: $*"; exit 1; }
skip() { say "SKIPPED: $*"; exit 0; }

started=$SECONDS
# Swift Testing's --filter matches test IDs (Module.Type/function), not display names:
# the suites "cgroup enforcement" and "Limits as people write them", and chapter 04's
# runtime (its cgroup v2 paths: cgroup namespaces, cgroup.freeze, the device program;
# AppArmor, which this kernel has on), and what the runtime defends against (the
# container's read-only cgroup2 mount, sysctls, the cgroup parents it made), and the
# talk's cgroup-tools demo (cgroup-tools on v2); the seccomp compiler against crun's
# libseccomp through every ABI, on a kernel that runs x32 calls (syscall.x32=y below;
# 113 s under TCG), and chapter 08's keyring and /dev/mem escapes (this kernel has
# /dev/mem; 48 s). isorun update's v2 files (cpu.max,
# cpu.weight, memory.max beside runc's update) take minutes under TCG: run them with
# ISOLATION_VM_FILTER='IsorunUpdateTests|IsorunKillAllTests' (passed: 268 s and 373 s).
# ISOLATION_VM_FILTER=Chapter08Tests/kernelTargets (sysrq, kcore and module on Debian's kernel; passed, 150 s;
# not in the default: beside the other suites it meets a create racing a delete of the shared cgroup parent).
FILTER=${ISOLATION_VM_FILTER:-'CgroupEnforcementTests|ResourceLimitParsingTests|Chapter04Tests|Chapter04TerminalTests|Chapter04AppArmorTests|ConformanceDefenses|TalkDemoTests|Chapter04SeccompDifferentialTests|Chapter08Tests/keyringAndMemory'}
VM_TIMEOUT=${ISOLATION_VM_TIMEOUT:-1800}
CACHE=${ISOLATION_VM_CACHE:-$PACKAGE_ROOT/.build/isolation-vm}
read -r -a BUILD_FLAGS <<< "${ISOLATION_VM_BUILD_FLAGS:-}"

# apt-get as root directly, otherwise through sudo when that works without a password.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then sudo -n "$@"
    else return 1
    fi
}
apt_updated=""
apt_update() {
    [ -z "$apt_updated" ] || return 0
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq > /dev/null && apt_updated=yes
}
apt_install() {
    command -v apt-get > /dev/null && as_root true || return 1
    apt_update || return 1
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" > /dev/null
}

# --- Can qemu run here at all? The only reasons to skip. ---------------------------
[ "$(uname -m)" = x86_64 ] || skip "this lane boots an x86_64 VM; this host is $(uname -m)"
if ! command -v qemu-system-x86_64 > /dev/null; then
    apt_install qemu-system-x86 || true
    command -v qemu-system-x86_64 > /dev/null \
        || skip "qemu-system-x86_64 is missing and could not be installed (apt-get install qemu-system-x86)"
fi

# --- Everything below is required: a problem is a failure, not a skip. -------------
# The initramfs has no libc: its busybox must be static (Debian's plain busybox is not).
static_busybox() {
    [ -x /bin/busybox ] && [[ "$(ldd /bin/busybox 2>&1 || true)" =~ "not a dynamic executable"|"statically linked" ]]
}
static_busybox || apt_install busybox-static || true
static_busybox || die "a static /bin/busybox (Debian's busybox-static) is needed for the VM's initramfs"

# Temporary files: one folder, removed at exit, also on Ctrl-C or a kill; qemu never
# outlives the script.
WORK=$(mktemp -d /tmp/isolation-vm-XXXXXXXX)
qemu_pid=""
# shellcheck disable=SC2317  # (reached through the traps)
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM HUP
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2> /dev/null; then
        kill -TERM "$qemu_pid" 2> /dev/null || true          # timeout(1) forwards it to qemu
    fi
    # qemu itself, to be sure (the pid file exists only while qemu may run; the check
    # of its name keeps us from ever killing a process that reused the number).
    pid=$(cat "$WORK/qemu.pid" 2> /dev/null || true)
    if [ -n "$pid" ] && [[ "$(cat "/proc/$pid/comm" 2> /dev/null)" == qemu-system* ]]; then
        kill -KILL "$pid" 2> /dev/null || true
    fi
    [ -z "$qemu_pid" ] || wait "$qemu_pid" 2> /dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

# --- The test bundle (built on the host, run in the guest through 9p). -------------
if [ -z "${ISOLATION_VM_BUNDLE:-}" ]; then
    bin=$(swift build "${BUILD_FLAGS[@]}" --show-bin-path) || die "swift build --show-bin-path failed"
    ISOLATION_VM_BUNDLE=$bin/isolationPackageTests.xctest
    if [ ! -x "$ISOLATION_VM_BUNDLE" ]; then
        say "no test bundle at $ISOLATION_VM_BUNDLE: swift build --build-tests ${BUILD_FLAGS[*]}"
        swift build --build-tests "${BUILD_FLAGS[@]}" || die "swift build --build-tests failed"
    fi
fi
[ -x "$ISOLATION_VM_BUNDLE" ] || die "no test bundle at $ISOLATION_VM_BUNDLE (run swift build --build-tests)"
BUNDLE=$(realpath "$ISOLATION_VM_BUNDLE")  # the guest sees the host's / at the same paths
case $BUNDLE in  # ... except where guest-init.sh mounts fresh kernel file systems
    /dev/* | /proc/* | /sys/*)   # (/tmp, /var/tmp and /run are bound back, see guest-init.sh)
        die "the guest cannot see $BUNDLE: it hides the host's /dev, /proc and /sys" ;;
esac

# --- Debian's kernel, cached in $CACHE/<version>/ -----------------------------------
# The version linux-image-amd64 points at now (a local look-up in apt's lists).
kernel_package() {
    apt-cache depends linux-image-amd64 2> /dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1
}
command -v apt-get > /dev/null || die "apt-get is needed to download Debian's kernel (linux-image-amd64)"
package=$(kernel_package)
if [ -z "$package" ]; then
    apt_update || die "apt-cache knows no linux-image-amd64 and apt-get update failed"
    package=$(kernel_package)
    [ -n "$package" ] || die "apt-cache knows no linux-image-amd64 (not a Debian-like apt source?)"
fi
version=${package#linux-image-}
KDIR=$CACHE/$version
if [ ! -s "$KDIR/vmlinux" ] || [ ! -s "$KDIR/modules/order" ]; then
    say "downloading $package (cached in $KDIR)"
    mkdir -p "$WORK/deb"
    # Run as root, apt-get download uses its _apt sandbox user, which cannot write to
    # our private temporary folder: download as ourselves instead.
    sandbox=()
    [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
    if ! (cd "$WORK/deb" && apt-get download -q "${sandbox[@]}" "$package" > /dev/null); then
        # Stale package lists point at files the mirror no longer has.
        apt_update || die "apt-get download $package failed, and apt-get update failed"
        package=$(kernel_package); version=${package#linux-image-}; KDIR=$CACHE/$version
        (cd "$WORK/deb" && apt-get download -q "${sandbox[@]}" "$package" > /dev/null) \
            || die "apt-get download $package failed"
    fi
    dpkg-deb -x "$WORK"/deb/linux-image-*.deb "$WORK/pkg" || die "cannot extract the kernel package"
    vmlinuz=$(ls "$WORK"/pkg/boot/vmlinuz-* 2> /dev/null | head -n 1)
    [ -n "$vmlinuz" ] || die "$package has no /boot/vmlinuz-*"

    # The uncompressed ELF vmlinux boots directly through PVH (Debian sets CONFIG_PVH)
    # and saves the ~5 s the kernel's own decompressor takes under emulation. As the
    # kernel's scripts/extract-vmlinux does: find the compressed payload's magic in the
    # bzImage, decompress from there, keep the first result that is an ELF file.
    extract() {  # magic (grep -P bytes), decompressor
        local pos
        for pos in $(LC_ALL=C grep -aboP "$1" "$vmlinuz" | cut -d: -f1); do
            tail -c +"$((pos + 1))" "$vmlinuz" | $2 > "$WORK/vmlinux" 2> /dev/null || true
            if [ "$(head -c 4 "$WORK/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then return 0; fi
        done
        return 1
    }
    extract '\xfd7zXZ\x00' 'xz -dc' || extract '\x28\xb5\x2f\xfd' 'zstd -dc' \
        || extract '\x1f\x8b\x08' 'gzip -dc' || die "cannot find an ELF vmlinux inside $vmlinuz"

    # The modules for virtio-pci and the 9p file system, in load order. The package has
    # no modules.dep (depmod runs at install time), but each .ko names what it needs in
    # its .modinfo `depends=` field: a depth-first walk puts dependencies first.
    moddir=$(ls -d "$WORK"/pkg/lib/modules/*/kernel)
    mkdir -p "$WORK/modules"
    : > "$WORK/modules/order"
    add_module() {
        local name=$1 file dep
        grep -qx "$name.ko" "$WORK/modules/order" && return 0
        # builtin modules need nothing loaded
        grep -q "/$name.ko\$" "$moddir/../modules.builtin" 2> /dev/null && return 0
        file=$(find "$moddir" -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" | head -n 1)
        [ -n "$file" ] || die "module $name is not in $package"
        case $file in
            *.xz) xz -dc "$file" > "$WORK/modules/$name.ko" ;;
            *.zst) zstd -qdc "$file" > "$WORK/modules/$name.ko" ;;
            *) cp "$file" "$WORK/modules/$name.ko" ;;
        esac
        for dep in $(tr '\0' '\n' < "$WORK/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
            add_module "${dep//-/_}"
        done
        echo "$name.ko" >> "$WORK/modules/order"
    }
    for module in virtio_pci 9pnet_virtio 9p; do add_module "$module"; done

    rm -rf "$KDIR.new"
    mkdir -p "$KDIR.new"
    mv "$WORK/vmlinux" "$WORK/modules" "$KDIR.new/"
    rm -rf "$KDIR"
    mv "$KDIR.new" "$KDIR"
    rm -rf "$WORK/deb" "$WORK/pkg"
    # Kernels linux-image-amd64 no longer points at are not needed any more.
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$version" -exec rm -rf {} +
fi

# --- The initramfs: busybox + modules + guest-init.sh, cached by their checksum. ----
# (uncompressed: the kernel unpacks it faster than it would decompress it under TCG)
stamp=$(cat /bin/busybox "$KDIR"/modules/* Tests/VM/guest-init.sh | sha256sum | cut -c1-16)
INITRAMFS=$KDIR/initramfs-$stamp.cpio
if [ ! -s "$INITRAMFS" ]; then
    say "building the initramfs"
    root=$WORK/initramfs
    mkdir -p "$root/bin" "$root/modules"
    cp /bin/busybox "$root/bin/busybox"
    cp "$KDIR"/modules/* "$root/modules/"
    cp Tests/VM/guest-init.sh "$root/init"
    chmod 755 "$root/init" "$root/bin/busybox"
    rm -f "$KDIR"/initramfs-*.cpio
    (cd "$root" && find . | /bin/busybox cpio -o -H newc -R 0:0 > "$INITRAMFS.new" 2> /dev/null) \
        || die "cannot build the initramfs"
    mv "$INITRAMFS.new" "$INITRAMFS"
fi

# This run's parameters: a second cpio archive appended to the cached one (the kernel
# unpacks concatenated archives in turn), read by guest-init.sh as /job/params.
squote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
mkdir -p "$WORK/job/job"
{
    echo "BUNDLE=$(squote "$BUNDLE")"
    echo "PACKAGE=$(squote "$PACKAGE_ROOT")"  # the chapters' sources too (chapter 08 builds escapes.c)
    echo "FILTER=$(squote "$FILTER")"
    # The guest's own watchdog fires first, to say what hung (guest-init.sh).
    echo "GUEST_TIMEOUT=$((VM_TIMEOUT > 240 ? VM_TIMEOUT - 120 : VM_TIMEOUT / 2))"
    [ -t 1 ] || echo "NO_COLOR=1"  # plain text in CI logs
} > "$WORK/job/job/params"
(cd "$WORK/job" && find job | /bin/busybox cpio -o -H newc -R 0:0 > "$WORK/job.cpio" 2> /dev/null)
cat "$INITRAMFS" "$WORK/job.cpio" > "$WORK/initramfs.cpio"

# --- qemu -------------------------------------------------------------------------
# console=ttyS0: the guest's output comes back on the serial port, i.e. qemu's stdout.
# quiet: only the tests and the guest's own [vm] lines, no boot log (unless it fails).
# syscall.x32=y: Debian builds the x32 ABI in but off (ENOSYS); on, an x32 system call
# runs, so the seccomp suite's x32 rows test the filter, not the kernel's refusal.
CMDLINE="console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init syscall.x32=y"
# shellcheck disable=SC2054  # the commas are qemu's
qemu_common=(
    -kernel "$KDIR/vmlinux" -initrd "$WORK/initramfs.cpio"
    -nodefaults -no-user-config -display none -no-reboot
    -serial stdio  # stdin is /dev/null below: no raw terminal, Ctrl-C stays ours
    -m 1G -smp 2
    # The host's / as the 9p tag hostroot, read-only: the guest cannot touch the host.
    # multidevs=remap: / spans several file systems (/proc, /sys, /dev, ...); without
    # it inode numbers from different ones could collide in the guest.
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -pidfile "$WORK/qemu.pid"
)

# Runs qemu in the background under timeout(1) (output to $WORK/console.log and, live,
# to our stdout when $3 is "show") and waits; the trap can interrupt that wait.
run_qemu() {  # seconds, accel, show|quiet, extra kernel arguments
    local seconds=$1 accel=$2 show=$3 extra=$4 status tail_pid="" cpu=max
    : > "$WORK/console.log"
    rm -f "$WORK/qemu.pid"
    # The CPU model: the Swift runtime and the test bundle use instructions qemu's
    # default model (qemu64) lacks (SIGILL): the host's own under KVM, everything TCG
    # can emulate otherwise.
    [ "$accel" != kvm ] || cpu=host
    timeout -k 5 "$seconds" qemu-system-x86_64 "${qemu_common[@]}" -accel "$accel" -cpu "$cpu" \
        -append "$CMDLINE $extra" < /dev/null > "$WORK/console.log" 2>&1 &
    qemu_pid=$!
    if [ "$show" = show ]; then
        # The serial console says \r\n; lines that start with VM- are ours to parse.
        # sed -u: line by line, so CI logs show the tests as they run.
        tail -n +1 -f --pid="$qemu_pid" "$WORK/console.log" | sed -u -e 's/\r$//' -e '/^VM-/d' &
        tail_pid=$!
    fi
    status=0
    { wait "$qemu_pid"; } 2> /dev/null || status=$?  # no "Aborted" job notice from bash
    qemu_pid=""
    rm -f "$WORK/qemu.pid"
    [ -z "$tail_pid" ] || wait "$tail_pid" || true
    return "$status"
}

# KVM when it really works. /dev/kvm can exist and still be useless (e.g. a nested
# hypervisor on which the guest hangs), so boot once with KVM and a short timeout,
# and fall back to software emulation (TCG, multi-threaded: one host thread per vCPU).
# The answer holds until the host reboots: it is cached under the host's boot id.
accel=${ISOLATION_VM_ACCEL:-}
if [ -z "$accel" ]; then
    accel="tcg,thread=multi"
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        probe=$CACHE/kvm-probe-$(cat /proc/sys/kernel/random/boot_id 2> /dev/null || echo unknown)
        if [ ! -s "$probe" ]; then
            if run_qemu 15 kvm quiet isolation.probe=1 && grep -q VM-KVM-PROBE-OK "$WORK/console.log"; then
                echo kvm > "$probe"
            else
                echo "tcg,thread=multi" > "$probe"
                say "/dev/kvm is there but a KVM guest did not boot (probe: 15 s at most): using TCG, slower"
                say "  qemu said: $(tr -d '\r' < "$WORK/console.log" | grep -v '^$' | tail -n 1)"
            fi
        fi
        accel=$(cat "$probe")
    fi
elif [ "$accel" = tcg ]; then
    accel="tcg,thread=multi"
fi

say "booting $version ($accel) to run: $FILTER"
vm_started=$SECONDS
qemu_status=0
run_qemu "$VM_TIMEOUT" "$accel" show "" || qemu_status=$?

result=$(tr -d '\r' < "$WORK/console.log" | sed -n 's/^VM-TESTS-EXIT=\([0-9]*\)$/\1/p' | tail -n 1)
if [ -z "$result" ]; then
    [ "$qemu_status" -ne 124 ] || say "the VM ran out of time (ISOLATION_VM_TIMEOUT=${VM_TIMEOUT} s)"
    die "the VM did not report a test result (qemu exit status $qemu_status; its console is above)"
fi
say "VM: $((SECONDS - vm_started)) s, lane: $((SECONDS - started)) s"
if [ "$result" -ne 0 ]; then
    say "FAILED: the cgroup v2 tests failed in the VM (exit status $result)"
    exit "$result"  # the lane's status is the tests'
fi
say "passed: the cgroup and chapter-04 runtime tests pass on cgroup v2"
exit 0
