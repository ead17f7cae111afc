// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Scion",
    products: [
        .library(name: "Scion", targets: ["Scion"]),
        .executable(name: "scion", targets: ["ScionCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, each through pkg-config; only the wrapper targets import them.
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        .target(name: "HDF5", dependencies: ["CHDF5"]),
        .target(name: "ScionIR"),
        .target(name: "ScionKeras", dependencies: ["ScionIR", "HDF5", "CZlib"]),
        .target(name: "Scion", dependencies: ["ScionIR", "ScionKeras", "CZlib"]),
        .executableTarget(
            name: "ScionCommand",
            dependencies: ["Scion", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .testTarget(name: "ScionIRTests", dependencies: ["ScionIR"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5"], exclude: ["Resources"]),
        .testTarget(name: "ScionKerasTests", dependencies: ["ScionKeras", "ScionIR", "HDF5"]),
        .testTarget(name: "ScionTests", dependencies: ["Scion", "ScionIR"]),
        .testTarget(name: "ScionCommandTests", dependencies: ["ScionCommand"]),
    ],
    swiftLanguageModes: [.v6]
)
