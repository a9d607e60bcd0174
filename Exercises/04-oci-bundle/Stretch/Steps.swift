// Exercise 04, stretch · your steps. Replace each `try exerciseTODO(...)` with your code,
// then run `swift run check 04 --stretch`: it gives your runtime a bundle with hooks
// (one that records what it was given, one that fails, one that hangs) and a root
// filesystem whose symlinks point at the host. Stuck after a failed check? `--hint`
// names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "hook": run one of config.json's hooks for the container whose state is `state`.
/// Returns once it succeeded; throws when it failed, was killed, or ran out of time.
func runHook(_ hook: OCIConfig.Hook, state: OCIState) throws {
    try exerciseTODO("04-stretch", step: "hook",
                     hint: "what must become true: hook.path runs with exactly hook.args and hook.env, reads the container's state JSON on its stdin, and a non-zero exit, a signal or more than hook.timeout seconds is an error (and a hook that hangs does not stay behind). Read the runtime-spec's config.md, \"POSIX-platform Hooks\", and runtime.md, \"State\"; pipe(2), waitpid(2)",
                     notes: "Chapters/04-oci-bundle/README.md#hooks")
}

/// Step "resolve": the host path that `destination` (a path inside the container, such
/// as "/data") means, given that the container's root is `rootfs`.
func resolveInside(_ destination: String, rootfs: FilePath) throws -> FilePath {
    try exerciseTODO("04-stretch", step: "resolve",
                     hint: "what must become true: the path returned is the one the container itself would reach, always below rootfs, even when the image has symlinks on the way (absolute ones, and ones full of ..). rootfs + destination is not it: what would mkdir and mount follow? Read path_resolution(7), symlink(7), and the notes on CVE-2021-30465",
                     notes: "Chapters/04-oci-bundle/README.md#the-cves-that-shaped-runc")
}
