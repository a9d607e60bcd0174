// Exercise 05 · your steps: the answers of a runtime. Replace each `try exerciseTODO(...)`
// with your code, then run `swift run check 05`: it plays the engine (create, state,
// start, state, the exit code, delete) and says what it saw.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "exec-fifo" (in `create`): make the FIFO the init waits on until `start`.
func makeExecFIFO(at path: FilePath) throws {
    try exerciseTODO("05", step: "exec-fifo",
                     hint: "mkfifo(3) makes a named pipe: mkfifo(path.string, 0o622) (check what it returns). Opening one end blocks until someone opens the other: that is the whole trick",
                     notes: "Chapters/04-oci-bundle/README.md#the-lifecycle-and-its-rules")
}

/// Step "wait-for-start" (in the container's init, after pivot_root): block until
/// `start`. `stateDirectory` is an O_PATH descriptor of the container's folder, which
/// holds exec.fifo (the path itself is on the host, out of reach after pivot_root).
func waitForStart(stateDirectory: Int32) throws {
    try exerciseTODO("05", step: "wait-for-start",
                     hint: "openat(stateDirectory, \"exec.fifo\", O_WRONLY | O_CLOEXEC) blocks until `start` opens it for reading; then write one byte for `start` to read, and close it",
                     notes: "Chapters/04-oci-bundle/README.md#create-step-by-step-in-the-order-the-kernel-needs")
}

/// Step "start": let the waiting init go on to exec: open `fifo` for reading, read the
/// init's byte, and remove the FIFO (its absence is how `state` tells "running").
func startContainer(fifo: FilePath) throws {
    try exerciseTODO("05", step: "start",
                     hint: "open(fifo, O_RDONLY) lets the init's open return; read(2) its byte; unlink(2) the FIFO. A dead init never writes: open with O_NONBLOCK and poll(2) with a timeout instead of hanging",
                     notes: "Chapters/04-oci-bundle/README.md#the-lifecycle-and-its-rules")
}

/// Step "state": the container's state, as the runtime-spec defines it (runtime.md
/// "State"): created while the init waits on the FIFO, running once it exec'd, stopped
/// once the process is gone. `pid` only when it is not stopped.
func containerState(_ record: Record) throws -> OCIState {
    try exerciseTODO("05", step: "state",
                     hint: "ProcessInfoStat(pid: record.pid) reads /proc/PID/stat: nil, another startTime or state \"Z\" (a zombie) mean stopped. Otherwise: does record.fifo still exist? Return OCIState(id:status:pid:bundle:)",
                     notes: "Chapters/04-oci-bundle/README.md#the-lifecycle-and-its-rules and the runtime-spec's runtime.md")
}
