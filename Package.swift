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
        .library(name: "IsolationImage", targets: ["IsolationImage"]),
        .executable(name: "chapter-01", targets: ["Chapter01"]),
        .executable(name: "chapter-02", targets: ["Chapter02"]),
        .executable(name: "chapter-03", targets: ["Chapter03"]),
        .executable(name: "chapter-04", targets: ["Chapter04"]),
        .executable(name: "isorun", targets: ["isorun"]),
        .executable(name: "doctor", targets: ["Doctor"]),
        .executable(name: "chapter-05", targets: ["Chapter05"]),
        .executable(name: "chapter-06", targets: ["Chapter06"]),
        .executable(name: "chapter-06-pull", targets: ["Chapter06Pull"]),
        .executable(name: "chapter-07", targets: ["Chapter07"]),
        .executable(name: "chapter-08", targets: ["Chapter08"]),
        // Chapter 07's network layer as a CNI plugin, for containerd's CRI or podman.
        .executable(name: "isolation-cni", targets: ["IsolationCNI"]),
        // Exercises/ (issue #7): the chapters' steps with holes, and their checker.
        .executable(name: "exercise-01", targets: ["Exercise01"]),
        .executable(name: "exercise-02", targets: ["Exercise02"]),
        .executable(name: "exercise-03", targets: ["Exercise03"]),
        .executable(name: "exercise-04", targets: ["Exercise04"]),
        .executable(name: "exercise-05", targets: ["Exercise05"]),
        .executable(name: "exercise-06", targets: ["Exercise06"]),
        .executable(name: "exercise-07", targets: ["Exercise07"]),
        .executable(name: "exercise-08", targets: ["Exercise08"]),
        .executable(name: "check", targets: ["Check"]),
        // The harder tier of an exercise (Exercises/NN-*/Stretch/), checked by `check NN --stretch`.
        .executable(name: "exercise-01-stretch", targets: ["Exercise01Stretch"]),
        .executable(name: "exercise-02-stretch", targets: ["Exercise02Stretch"]),
        .executable(name: "exercise-03-stretch", targets: ["Exercise03Stretch"]),
        .executable(name: "exercise-04-stretch", targets: ["Exercise04Stretch"]),
        .executable(name: "exercise-05-stretch", targets: ["Exercise05Stretch"]),
        .executable(name: "exercise-06-stretch", targets: ["Exercise06Stretch"]),
        .executable(name: "exercise-07-stretch", targets: ["Exercise07Stretch"]),
        .executable(name: "exercise-08-stretch", targets: ["Exercise08Stretch"]),
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
        // Image layers: tar with gzip or zstd (libarchive), and SHA-256 digests (OpenSSL).
        .systemLibrary(
            name: "CLibarchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        .systemLibrary(
            name: "CLibcrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "Isolation",
            dependencies: [
                "CIsolation",
                "CLibcap",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            exclude: ["Image"]
        ),
        // The image layer (chapter 06) is a module of its own in the library's Image/ folder:
        // only what reads images links libarchive and libcrypto, so the runtime (isorun)
        // stays free of them and can be linked as one static executable.
        .target(
            name: "IsolationImage",
            dependencies: [
                "Isolation", "CIsolation", "CLibarchive", "CLibcrypto",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/Isolation/Image"
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
            // cri_pod.py: the kubelet's calls over CRI (Python, grpcio), run by the lesson and its test.
            exclude: ["README.md", "cri_pod.py"]
        ),
        .executableTarget(
            name: "Chapter06",
            dependencies: [
                "Isolation", "IsolationImage", "RuntimeCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/06-images",
            exclude: ["README.md", "Pull"]
        ),
        // The registry client: the only program that uses the network (URLSession, with
        // threads), so never one that forks; chapter-06 starts it as a child.
        .executableTarget(
            name: "Chapter06Pull",
            dependencies: [
                "Isolation", "IsolationImage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/06-images/Pull"
        ),
        .executableTarget(
            name: "Chapter07",
            dependencies: [
                "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/07-networks",
            exclude: ["README.md"]
        ),
        // The escapes are C (escapes.c), compiled static at run time for the container.
        .executableTarget(
            name: "Chapter08",
            dependencies: [
                "Isolation", "RuntimeCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Chapters/08-breaking-out",
            exclude: ["README.md", "escapes.c"]
        ),
        .executableTarget(
            name: "IsolationCNI",
            dependencies: ["Isolation", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "IsolationTests",
            dependencies: ["Isolation", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "ChapterTests",
            dependencies: ["Isolation", "IsolationImage", "RuntimeCLI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Exercises/: what every exercise shares (exerciseTODO), one target per exercise
        // (the holes are in its Steps.swift, the reference in Solution/), and the checker.
        .target(
            name: "ExerciseSupport",
            dependencies: ["Isolation", .product(name: "SystemPackage", package: "swift-system")],
            path: "Exercises/Support"
        ),
        .executableTarget(
            name: "Exercise01",
            dependencies: exerciseDependencies,
            path: "Exercises/01-chroot-jail",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise02",
            dependencies: exerciseDependencies,
            path: "Exercises/02-namespaces",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise03",
            dependencies: exerciseDependencies,
            path: "Exercises/03-cgroups",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise04",
            dependencies: exerciseDependencies,
            path: "Exercises/04-oci-bundle",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise05",
            dependencies: exerciseDependencies,
            path: "Exercises/05-engines",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise06",
            dependencies: exerciseDependencies + ["IsolationImage"],
            path: "Exercises/06-images",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise07",
            dependencies: exerciseDependencies,
            path: "Exercises/07-networks",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise01Stretch",
            dependencies: exerciseDependencies,
            path: "Exercises/01-chroot-jail/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise02Stretch",
            dependencies: exerciseDependencies,
            path: "Exercises/02-namespaces/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise03Stretch",
            dependencies: exerciseDependencies,
            path: "Exercises/03-cgroups/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise04Stretch",
            dependencies: exerciseDependencies,
            path: "Exercises/04-oci-bundle/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise05Stretch",
            // RuntimeCLI: the container's init, which `create` clones (ContainerInitCommand).
            dependencies: exerciseDependencies + ["RuntimeCLI"],
            path: "Exercises/05-engines/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise06Stretch",
            dependencies: exerciseDependencies + ["IsolationImage", "CIsolation"],
            path: "Exercises/06-images/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise07Stretch",
            dependencies: exerciseDependencies,
            path: "Exercises/07-networks/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Exercise08",
            dependencies: exerciseDependencies,
            path: "Exercises/08-breaking-out",
            exclude: ["README.md", "Solution", "Stretch"]
        ),
        .executableTarget(
            name: "Exercise08Stretch",
            dependencies: exerciseDependencies,
            path: "Exercises/08-breaking-out/Stretch",
            exclude: ["README.md", "Solution"]
        ),
        .executableTarget(
            name: "Check",
            dependencies: [
                "Isolation", "IsolationImage", "CIsolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Exercises/Check"
        ),
        .testTarget(
            name: "ExerciseTests",
            dependencies: ["Isolation", .product(name: "SystemPackage", package: "swift-system")],
            exclude: ["Wrong"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// Every exercise is a ParsableCommand over the library and ExerciseSupport.
var exerciseDependencies: [Target.Dependency] {
    [
        "Isolation", "ExerciseSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "SystemPackage", package: "swift-system"),
    ]
}
