// swift-tools-version:6.0
//
// Isolation: Linux containers from scratch, in Swift.
//
// One library (`Isolation`) and one executable per chapter of container history.
// The C target `CIsolation` holds only what Swift's Glibc module cannot express;
// `CLibcap` is the system library libcap (apt: libcap-dev).
import PackageDescription

let package = Package(
    name: "isolation",
    products: [
        .library(name: "Isolation", targets: ["Isolation"]),
        .executable(name: "chapter-01", targets: ["Chapter01"]),
        .executable(name: "chapter-02", targets: ["Chapter02"]),
        .executable(name: "chapter-03", targets: ["Chapter03"]),
        .executable(name: "chapter-04", targets: ["Chapter04"]),
        .executable(name: "isorun", targets: ["isorun"]),
        .executable(name: "doctor", targets: ["Doctor"]),
        .executable(name: "chapter-05", targets: ["Chapter05"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .target(name: "CIsolation"),
        .systemLibrary(
            name: "CLibcap",
            pkgConfig: "libcap",
            providers: [.apt(["libcap-dev"])]
        ),
        .target(
            name: "Isolation",
            dependencies: [
                "CIsolation",
                "CLibcap",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "Chapter01",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/01-chroot-jail",
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "Chapter02",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/02-namespaces",
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "Chapter03",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/03-cgroups",
            exclude: ["README.md", "plot.svg"]
        ),
        // runc's command line over Isolation's Runtime, shared by chapter-04 and isorun.
        .target(
            name: "RuntimeCLI",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "Chapter04",
            dependencies: [
                "Isolation", "RuntimeCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/04-oci-bundle",
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "isorun",
            dependencies: ["RuntimeCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "Doctor",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Chapter05",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/05-engines",
            exclude: ["README.md"]
        ),
        .testTarget(
            name: "IsolationTests",
            dependencies: ["Isolation", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "ChapterTests",
            dependencies: ["Isolation", .product(name: "SystemPackage", package: "swift-system")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
