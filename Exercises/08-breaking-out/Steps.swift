// Exercise 08 · your step. Replace the `try exerciseTODO(...)` with your code, then
// run `sudo .build/debug/exercise-08` to see the table, and `swift run check 08`.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "missing-layer": the config below has every layer of chapter 08's ladder but one.
/// Run the exercise: the table shows the escape that still gets through. Add the layer
/// that stops it, without taking any other away.
func addMissingLayer(_ config: inout OCIConfig) throws {
    try exerciseTODO("08", step: "missing-layer",
                     hint: "what must become true: every escape of the table fails against your config. Run sudo .build/debug/exercise-08: the escape that still gets through names the layer that is missing (the notes' table says which layer stops it, and its man page why). Add that layer; take none away",
                     notes: "Chapters/08-breaking-out/README.md#the-escapes-and-what-stops-them")
}
