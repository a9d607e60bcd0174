import Glibc
import SystemPackage

/// The current thread's `errno` as a swift-system `Errno`.
@inline(__always)
package func currentErrno() -> Errno { Errno(rawValue: Glibc.errno) }

/// Calls `body` until it does not fail with EINTR (unless `retryOnInterrupt` is false)
/// and turns a `-1` result into a thrown `Errno`, the way swift-system's wrappers do.
@discardableResult
@inline(__always)
package func valueOrErrno<T: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ body: () -> T
) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = currentErrno()
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}

/// A stable C string array (argv/envp) that lives as long as the closure runs.
func withCStringArray<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) throws -> R) rethrows -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { for p in pointers { free(p) } }
    return try body(pointers)
}

/// Calls `body` with `path` as a C string, retrying on EINTR; `-1` becomes a thrown `Errno`.
@discardableResult
package func pathCall<T: FixedWidthInteger>(
    _ path: FilePath, retryOnInterrupt: Bool = true, _ body: (UnsafePointer<CChar>) -> T
) throws -> T {
    while true {
        let result = path.withPlatformString { body($0) }
        if result != -1 { return result }
        let error = currentErrno()
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}
