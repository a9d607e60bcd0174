#!/bin/busybox sh
# shellcheck shell=dash
# /init of the VM that Tests/VM/cgroup-v2.sh boots: PID 1 in the guest, run by the
# kernel straight from the initramfs (busybox-static + a few kernel modules).
#
# It mounts the host's / (shared read-only over 9p), mounts cgroup2 at /sys/fs/cgroup
# with every controller enabled for children (as on a current systemd host), runs the
# host-built test bundle as root inside `chroot /host`, prints `VM-TESTS-EXIT=<n>` on
# the serial console for the host script to parse, and powers off.
#
# What to run comes from /job/params, a second cpio archive the host script appends to
# the cached initramfs for each run (BUNDLE, PACKAGE, FILTER, GUEST_TIMEOUT, NO_COLOR).

/bin/busybox mkdir -p /proc /sys /dev /host /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
# Every busybox applet as /bin/NAME, so the rest can say `mount` and `insmod`.
/bin/busybox --install -s /bin
export PATH=/bin

# Whatever goes wrong below, the host must see a result line and the VM must stop:
# without the marker the host reports "no result" instead of waiting for its timeout.
finish() {
    echo  # the marker must start a line, even after output without a final newline
    echo "VM-TESTS-EXIT=$1"
    sync
    poweroff -f
    echo o > /proc/sysrq-trigger  # in case poweroff -f did not work
    sleep 10
}
fail() {
    echo "[vm] error: $*"
    finish 125
}

# KVM probe (cgroup-v2.sh boots with isolation.probe=1 to see whether KVM works at all):
# reaching user space is the whole test.
if grep -q 'isolation.probe=1' /proc/cmdline; then
    echo "VM-KVM-PROBE-OK"
    poweroff -f
fi

# virtio-pci and 9p are modules in Debian's kernel; /modules/order lists them with
# dependencies first (the host script worked the order out from each module's
# `depends=` field, since the extracted package has no modules.dep).
while read -r module; do
    [ -n "$module" ] || continue
    insmod "/modules/$module" || fail "insmod $module failed"
done < /modules/order

# The host's root file system, read-only. msize: larger 9p messages, fewer round trips
# (the test bundle and the Swift runtime are read from here).
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
    || fail "cannot mount the host's / over 9p"

. /job/params || fail "no /job/params in the initramfs"

# A fresh kernel file system tree inside the chroot: the host's own /proc, /sys, /dev
# and /tmp (seen through 9p) would be wrong or read-only. /run and /var/tmp: writable
# scratch for anything that expects it.
# A bundle under a folder that is about to be covered (a CI clone in /tmp): hold its
# package (or, outside one, its folder) aside, and bind it back at the same path on the
# fresh tmpfs below. The package, not only .build: tests read sources from it too.
keep=""
case $BUNDLE in
    /tmp/* | /var/tmp/* | /run/*)
        keep=${BUNDLE%/*}
        case $BUNDLE in "${PACKAGE:-/nonexistent}"/*) keep=$PACKAGE ;; esac
        mkdir -p /keep && mount -o bind "/host$keep" /keep || fail "cannot hold $keep aside" ;;
esac
mount -t proc proc /host/proc || fail "mount /host/proc"
mount -t sysfs sysfs /host/sys || fail "mount /host/sys"
# securityfs: where apparmor_parser loads profiles (the AppArmor suite; Debian's kernel
# has AppArmor on).
mount -t securityfs securityfs /host/sys/kernel/security 2>/dev/null
mount -t devtmpfs devtmpfs /host/dev || fail "mount /host/dev"
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs tmpfs /host/tmp || fail "mount /host/tmp"
mount -t tmpfs tmpfs /host/run
mount -t tmpfs tmpfs /host/var/tmp
if [ -n "$keep" ]; then
    mkdir -p "/host$keep" && mount -o bind /keep "/host$keep" || fail "cannot bind $keep back"
fi

# The point of the VM: cgroup v2 alone at /sys/fs/cgroup (CgroupMode.detect() says
# .unified), and every controller the kernel offers enabled for the root's children,
# as systemd does. The v1 controllers are never mounted, so all of them are free for v2.
mount -t cgroup2 none /host/sys/fs/cgroup || fail "mount cgroup2"
controllers=$(cat /host/sys/fs/cgroup/cgroup.controllers)
enable=""
for c in $controllers; do enable="$enable +$c"; done
echo "$enable" > /host/sys/fs/cgroup/cgroup.subtree_control || fail "cannot enable$enable"
echo "[vm] kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, cgroup2 controllers: $(cat /host/sys/fs/cgroup/cgroup.subtree_control)"

# Foundation's Process (and anything resolving localhost) hangs without a loopback.
ip link set lo up || fail "cannot bring lo up"

# The host's file system becomes the root of the mount namespace, as switch_root(8)
# does at boot: moved over /, not just chroot'ed into. It matters to the runtime: after
# setns(2) into a container's mount namespace, the root is that namespace's top mount on
# "/", so under a plain chroot an `exec` (or a joined mount namespace) would land in
# the initramfs instead of the container.
cd /host || fail "cd /host"
mount --move . / || fail "cannot move the host's file system to /"

# The tests, as root, in the host's file system: /bin/sh, head, tr, cat, sleep and the
# Swift runtime in /opt/swift are the host's own. setsid: a session of their own,
# with the serial console as their terminal-less stdout.
chroot . /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 ${NO_COLOR:+NO_COLOR=1} \
    "$BUNDLE" --testing-library swift-testing --filter "$FILTER" < /dev/null 2>&1 &
tests=$!

# A watchdog: tests that hang would otherwise only end in the host's timeout, with
# nothing said. Before that, it prints what every process is doing (state, the kernel
# function it waits in, and the test bundle's threads), then ends the tests.
show_processes() {
    echo "[vm] the tests ran for $GUEST_TIMEOUT s without ending: what each process is doing"
    for dir in ./proc/[0-9]*; do
        pid=${dir##*/}
        [ "$pid" -gt 2 ] 2>/dev/null || continue
        read -r comm < "$dir/comm" 2>/dev/null || continue
        state=$(sed -n 's/^State:[[:space:]]*//p' "$dir/status" 2>/dev/null)
        case $comm in kworker* | ksoftirq* | migration* | rcu* | cpuhp* | idle_inject* | kthreadd) continue ;; esac
        echo "[vm]   $pid $comm ($state) ppid $(sed -n 's/^PPid:[[:space:]]*//p' "$dir/status") waits in $(cat "$dir/wchan" 2>/dev/null): $(tr '\0' ' ' < "$dir/cmdline" 2>/dev/null | cut -c1-120)"
    done
    for task in ./proc/$tests/task/*; do
        echo "[vm]   thread ${task##*/} ($(sed -n 's/^State:[[:space:]]*//p' "$task/status" 2>/dev/null)) in $(cat "$task/wchan" 2>/dev/null)"
        sed 's/^/[vm]       /' "$task/stack" 2>/dev/null | head -n 8
    done
}
( sleep "$GUEST_TIMEOUT" && show_processes && kill -KILL $tests ) &
watchdog=$!
wait $tests
status=$?
kill $watchdog 2>/dev/null
# Nothing may be left in the cgroups the tests made.
leftover=$(ls -d ./sys/fs/cgroup/isolation/*/ 2>/dev/null)
if [ -n "$leftover" ]; then
    echo "[vm] cgroups left behind by the tests: $leftover"
    [ "$status" -ne 0 ] || status=1
fi
finish "$status"
