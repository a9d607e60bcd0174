// Exercise 05 · your steps: the answers of a runtime. Replace each `try exerciseTODO(...)`
// with your code, then run `swift run check 05`: it plays the engine (create, state,
// start, state, the exit code, delete) and says what it saw. Stuck after a failed check?
// `swift run check 05 --hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "exec-fifo" (in `create`): the thing the init waits on until `start` exists.
func makeExecFIFO(at path: FilePath) throws {
    try exerciseTODO("05", step: "exec-fifo",
                     hint: "what must become true: `path` exists and opening one end of it blocks until someone opens the other. Which kind of file behaves like that? Read fifo(7) and the notes on the lifecycle",
                     notes: "Chapters/04-oci-bundle/README.md#the-lifecycle-and-its-rules")
}

/// Step "wait-for-start" (in the container's init, after pivot_root): block until
/// `start`. `stateDirectory` is an O_PATH descriptor of the container's folder, which
/// holds exec.fifo (the path itself is on the host, out of reach after pivot_root).
func waitForStart(stateDirectory: Int32) throws {
    try exerciseTODO("05", step: "wait-for-start",
                     hint: "what must become true: the init stays before execve(2) until `start` runs, and `start` can tell it got there. Why can the init not use exec.fifo's path here? Read openat(2) (a path relative to a directory descriptor) and fifo(7)",
                     notes: "Chapters/04-oci-bundle/README.md#create-step-by-step-in-the-order-the-kernel-needs")
}

/// Step "start": the waiting init goes on to exec, and the FIFO's absence tells `state`
/// that it did.
func startContainer(fifo: FilePath) throws {
    try exerciseTODO("05", step: "start",
                     hint: "what must become true: the init's blocked open returns, `start` knows the init went on, and the FIFO is gone. What must `start` do if the init died meanwhile: hang? Read fifo(7), open(2) on O_NONBLOCK and poll(2)",
                     notes: "Chapters/04-oci-bundle/README.md#the-lifecycle-and-its-rules")
}

/// Step "state": the container's state, as the runtime-spec defines it (runtime.md
/// "State"): created while the init waits on the FIFO, running once it exec'd, stopped
/// once the process is gone. `pid` only when it is not stopped.
func containerState(_ record: Record) throws -> OCIState {
    try exerciseTODO("05", step: "state",
                     hint: "what must become true: `state` says created before start, running after, stopped once the process is gone, even if its PID was reused or it is a zombie. What in /proc tells those apart? Read proc(5) on /proc/PID/stat (state, starttime) and the runtime-spec's runtime.md",
                     notes: "Chapters/04-oci-bundle/README.md#the-lifecycle-and-its-rules and the runtime-spec's runtime.md")
}
