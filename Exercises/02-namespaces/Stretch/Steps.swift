// Exercise 02, stretch · your steps. The base exercise ran as root; chapter 02 without
// sudo maps one ID. Here an unprivileged user starts a container whose user namespace
// maps 0 to the user and 1…65536 to the user's subordinate IDs. Replace each
// `try exerciseTODO(...)` with your code, then run `swift run check 02 --stretch`: it
// reads the container's uid_map, gid_map and setgroups from outside, and the owner of a
// file the container chowned to 1000:1000, as the host sees it.
// Stuck after a failed check? `--hint` names the API, `--hint 2` the shape.
import ExerciseSupport
import Glibc
import Isolation
import SystemPackage

/// Step "subid-range": the range of subordinate IDs that `file` (/etc/subuid or
/// /etc/subgid) gives the user `user`, whose uid is `uid`. No range: throw, and say how to
/// get one (`usermodSuggestion(for:)` in Exercise02Stretch.swift has the line).
func subordinateRange(in file: FilePath, user: String, uid: uid_t) throws -> SubordinateRange {
    try exerciseTODO("02-stretch", step: "subid-range",
                     hint: "what must become true: the range returned is the one newuidmap(1) will accept for you, with at least 65536 IDs. What does one line of the file hold, and how may it name its user? Read subuid(5) and subgid(5)",
                     notes: "Exercises/02-namespaces/Stretch/README.md#subordinate-ids and Chapters/02-namespaces/README.md#the-user-namespace-map-we-write")
}

/// Step "id-maps": the child `pid` waits, in its new user namespace, with no map yet.
/// Afterwards its uid_map and gid_map each have two lines: 0 is `uid` (`gid`), and
/// 1…65536 are the start of `subuids` (`subgids`).
func writeIDMaps(for pid: pid_t, uid: uid_t, gid: gid_t, subuids: SubordinateRange, subgids: SubordinateRange) throws {
    try exerciseTODO("02-stretch", step: "id-maps",
                     hint: "what must become true: /proc/PID/uid_map and gid_map list your own ID as 0 and your range as 1…65536. This process may not write such a map itself: which rule in user_namespaces(7) (\"Defining user and group ID mappings\") stops it, and which programs may? Read newuidmap(1) and newgidmap(1)",
                     notes: "Exercises/02-namespaces/Stretch/README.md#why-the-helpers-exist")
}

/// Step "become-root": this process (the container's init, after exec) is in the new
/// user namespace. Afterwards its real, effective and saved IDs are 0 there, and it keeps
/// none of the host's supplementary groups.
func becomeRoot() throws {
    try exerciseTODO("02-stretch", step: "become-root",
                     hint: "what must become true: the host sees the container's processes with no supplementary group left (Groups: in /proc/PID/status), and uid and gid 0 inside. What does a process in a new user namespace keep of its groups, and what lets it change them? Read user_namespaces(7) on /proc/PID/setgroups, setgroups(2), setresuid(2)",
                     notes: "Exercises/02-namespaces/Stretch/README.md#setgroups")
}
