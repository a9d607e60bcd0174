// Exercise 05, stretch · your steps: what a real engine needs of a runtime beyond
// exercise 05's lifecycle. Replace each `try exerciseTODO(...)` with your code, then run
// `swift run check 05 --stretch`: a private podman runs containers with your runtime and
// the check reads podman's view, the calls it made, and what is left after. Stuck after
// a failed check? `--hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "global-options": `arguments` is the whole command line after the program's
/// name, as an engine writes it: runc's global options first, then the command and its
/// own arguments. Returns the options and the rest (starting with the command's name).
func parseEngineOptions(_ arguments: [String]) throws -> (options: EngineOptions, command: [String]) {
    try exerciseTODO("05-stretch", step: "global-options",
                     hint: "what must become true: every global option an engine sends before the command is read, in both spellings it uses (`--log FILE` and `--log-format=json`), and the command's own arguments are left untouched; an option this runtime cannot honour (`--systemd-cgroup`: cgroups managed by systemd) or a log format other than text and json is refused with a message that says so, not ignored. Read the notes on the calls the engines made, and runc(8) on its global options",
                     notes: "Chapters/05-engines/README.md#what-the-engines-called")
}

/// Step "log": `message` is why this call failed. Put it where the engine reads it.
func logError(_ message: String, options: EngineOptions) throws {
    try exerciseTODO("05-stretch", step: "log",
                     hint: "what must become true: with --log FILE, the file holds the error after the call, in the form --log-format names: with json one JSON object a line that podman can parse whatever the message contains (quotes, backslashes, newlines), with a level and a time, as runc writes it; what was in the file before stays. Without --log, nothing more than stderr. Read the notes, \"Errors go to the --log file\", open(2) on O_APPEND, and RFC 8259 on strings",
                     notes: "Chapters/05-engines/README.md#what-the-engines-called")
}

/// Step "kill-all" (`kill --all ID SIGNAL`): `record` is the container (its init's PID,
/// its cgroup's path), `status` what `state` would say now.
func signalEveryProcess(of record: ContainerRecord, status: OCIState.Status, signal: Int32) throws {
    try exerciseTODO("05-stretch", step: "kill-all",
                     hint: "what must become true: every process of the container gets the signal, also those its process started and left behind, and also when it has no PID namespace of its own (podman run --pid host: then the kernel kills nothing for you); a container whose processes are all gone is no error. What does the runtime know that lists every process of a container? Read cgroups(7) on cgroup.procs, and runc's `kill --all`",
                     notes: "Chapters/05-engines/README.md#what-the-engines-called and Chapters/03-cgroups/README.md")
}
