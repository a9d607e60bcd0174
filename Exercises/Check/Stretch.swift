// The harder tier: one more exercise per chapter, in Exercises/NN-*/Stretch/ (its own
// starter, README and Solution/), built as exercise-NN-stretch and checked by
// `check NN --stretch`. A new stretch adds its line here and its hints to
// Exercise.hintTable (Hints.swift).
extension Exercise {
    static var stretches: [Exercise] { [
        Exercise(number: "01", folder: "01-chroot-jail", title: "a jail the chroot escape cannot leave (pivot_root)", run: checkChrootJailStretch, stretch: true),
        Exercise(number: "02", folder: "02-namespaces", title: "a rootless container with a full sub-uid range (newuidmap, newgidmap)", run: checkNamespacesStretch, stretch: true,
                 runsUnprivileged: true),
        Exercise(number: "03", folder: "03-cgroups", title: "throttled, not killed, and a limit changed while it runs", run: checkCgroupsStretch, stretch: true),
        Exercise(number: "04", folder: "04-oci-bundle", title: "a bundle's hooks, and mounts a symlink cannot send out", run: checkBundleStretch, stretch: true),
        Exercise(number: "05", folder: "05-engines", title: "your runtime, driven by a real engine (podman)", run: checkEngineStretch, stretch: true),
        Exercise(number: "06", folder: "06-images", title: "a container's changes made into a layer", run: checkImagesStretch, stretch: true),
        Exercise(number: "07", folder: "07-networks", title: "the way out and a published port: NAT with nftables", run: checkNetworkStretch, stretch: true),
        Exercise(number: "08", folder: "08-breaking-out", title: "a seccomp filter by hand that i386 and x32 cannot walk around", run: checkSeccompStretch, stretch: true),
    ] }
}
